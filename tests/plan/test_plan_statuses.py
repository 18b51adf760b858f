"""Placeholder (events API) and erased (GDPR) subscribers are never planned."""

from __future__ import annotations

import pytest

from newsletter.models import SubscriberStatus
from newsletter.plan.cadence import suppression_reason
from newsletter.plan.decide import REASON_TEXT


@pytest.mark.parametrize("status", [SubscriberStatus.placeholder, SubscriberStatus.erased])
def test_placeholders_and_erased_subscribers_are_skipped_with_a_reason(status: str) -> None:
    assert suppression_reason(status=status, suppressed=None) == status
    assert status in REASON_TEXT


def test_every_status_but_active_is_skipped() -> None:
    for status in SubscriberStatus:
        expected = None if status == SubscriberStatus.active else status
        assert suppression_reason(status=status, suppressed=None) == expected
