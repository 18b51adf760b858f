"""Interaction weighting: kinds, values, time decay and machine flags."""

from __future__ import annotations

import numpy as np
import pytest

from newsletter.recommend.base import DAY, InteractionData
from newsletter.recommend.weighting import WeightingConfig, consumed_matrix, interaction_matrix

NOW = 1_000_000_000.0


def events(
    kinds: list[str], *, ages_days: list[float] | None = None, **extra: object
) -> InteractionData:
    """One event per kind, each on its own item, for user 0."""
    n = len(kinds)
    ages = np.array(ages_days if ages_days is not None else [0.0] * n)
    return InteractionData(
        n_users=1,
        n_items=n,
        user_idx=np.zeros(n, dtype=int),
        item_idx=np.arange(n),
        kind=np.array(kinds),
        timestamp=NOW - ages * DAY,
        **extra,  # type: ignore[arg-type]
    )


def test_kind_weights_order_purchase_click_read_view() -> None:
    """Default kind weights: purchase > click (and email click) > read > view."""
    row = interaction_matrix(events(["purchase", "click", "email_click", "read", "view"]), now=NOW)
    w = row.toarray()[0]
    assert w[0] > w[1] == w[2] > w[3] > w[4] > 0


def test_machine_flagged_events_are_ignored() -> None:
    """A scanner click adds nothing to the matrix nor to what the subscriber consumed."""
    data = events(["click", "click"], machine=np.array([False, True]))
    assert interaction_matrix(data, now=NOW).toarray()[0].tolist()[1] == 0
    assert consumed_matrix(data).toarray()[0].tolist() == [1.0, 0.0]


def test_half_life_halves_the_weight() -> None:
    """An event one half-life old weighs half as much as one from now."""
    data = events(["view", "view"], ages_days=[0.0, 30.0])
    w = interaction_matrix(data, WeightingConfig(half_life_days=30.0), now=NOW).toarray()[0]
    assert w[1] == pytest.approx(w[0] / 2)


def test_user_relative_decay_counts_from_the_last_event() -> None:
    """With decay_from='user', age is measured from the subscriber's latest event."""
    data = events(["view", "view"], ages_days=[100.0, 130.0])
    config = WeightingConfig(half_life_days=30.0, decay_from="user")
    w = interaction_matrix(data, config, now=NOW).toarray()[0]
    assert w == pytest.approx([1.0, 0.5])


def test_values_scale_and_threshold() -> None:
    """Ratings weigh (r / 5) ** power; below min_value they are dropped."""
    data = events(["rating"] * 3, value=np.array([5.0, 2.5, 3.5]))
    config = WeightingConfig(value_power=2.0, min_value=3.0)
    w = interaction_matrix(data, config, now=NOW).toarray()[0]
    assert w == pytest.approx([1.0, 0.0, 0.49])


def test_bad_indices_name_the_field() -> None:
    """Out-of-range indices raise a ValueError naming the offending field."""
    with pytest.raises(ValueError, match="item_idx"):
        InteractionData(
            n_users=1,
            n_items=1,
            user_idx=np.array([0]),
            item_idx=np.array([3]),
            kind=np.array(["view"]),
            timestamp=np.array([0.0]),
        )
