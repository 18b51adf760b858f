"""Intervals with published known answers (Wilson 1927; Newcombe 1998, Stat Med 17:873)."""

from __future__ import annotations

import pytest

from newsletter.report.lift import lift, wilson


def test_wilson_known_values() -> None:
    half = wilson(5, 10)
    assert (round(half.low, 4), round(half.high, 4)) == (0.2366, 0.7634)
    none = wilson(0, 10)
    assert none.low == 0.0 and round(none.high, 4) == 0.2775
    assert wilson(0, 0).high == 1.0  # no data: the whole range
    with pytest.raises(ValueError):
        wilson(11, 10)


def test_newcombe_difference_matches_the_paper() -> None:
    result = lift("rate", (56, 70), (48, 80))
    assert round(result.difference, 4) == 0.2
    assert (round(result.difference_low, 4), round(result.difference_high, 4)) == (0.0524, 0.3339)
    assert result.significant


def test_relative_lift_and_no_effect() -> None:
    same = lift("clicks", (100, 1000), (100, 1000))
    assert same.relative == 0.0 and same.relative_low < 0 < same.relative_high
    assert not same.significant
    empty = lift("clicks", (0, 50), (3, 50))
    assert empty.relative is None
