"""The ownership rules of `store.upsert` as pure functions: known answers and properties."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from newsletter.models import SubscriberStatus
from newsletter.store.upsert import merge_attributes, source_status

T = datetime(2026, 6, 1, tzinfo=UTC)
ACTIVE, UNSUB, BOUNCED, COMPLAINED = (
    SubscriberStatus.active,
    SubscriberStatus.unsubscribed,
    SubscriberStatus.bounced,
    SubscriberStatus.complained,
)


@pytest.mark.parametrize(
    ("stored", "given", "opted", "expected"),
    [
        (ACTIVE, None, None, ACTIVE),
        (ACTIVE, UNSUB, None, UNSUB),  # a source may unsubscribe
        (ACTIVE, COMPLAINED, None, COMPLAINED),
        (UNSUB, ACTIVE, None, UNSUB),  # "active" alone never re-activates
        (UNSUB, None, T - timedelta(days=1), UNSUB),  # an opt-in older than the unsubscribe
        (UNSUB, None, T + timedelta(days=1), ACTIVE),  # a newer explicit opt-in
        (UNSUB, ACTIVE, T + timedelta(days=1), ACTIVE),
        (UNSUB, BOUNCED, T + timedelta(days=1), UNSUB),  # the stored reason stays
        (BOUNCED, None, T + timedelta(days=1), ACTIVE),
        (UNSUB, COMPLAINED, None, COMPLAINED),  # a complaint overrides anything
        (COMPLAINED, ACTIVE, T + timedelta(days=9), COMPLAINED),  # and is final
    ],
)
def test_source_status_known_answers(
    stored: str, given: str | None, opted: datetime | None, expected: str
) -> None:
    assert source_status(stored=stored, changed_at=T, given=given, opted_in_at=opted) == expected


STATUSES = st.sampled_from(list(SubscriberStatus))
TIMES = st.none() | st.integers(-10, 10).map(lambda d: T + timedelta(days=d))


@given(stored=STATUSES, given_status=st.none() | STATUSES, changed=TIMES, opted=TIMES)
def test_no_source_row_undoes_a_subscribers_status_without_a_newer_opt_in(
    stored: str, given_status: str | None, changed: datetime | None, opted: datetime | None
) -> None:
    result = source_status(stored=stored, changed_at=changed, given=given_status, opted_in_at=opted)
    assert result in {stored, given_status, ACTIVE}
    if stored == COMPLAINED:
        assert result == COMPLAINED
    if stored != ACTIVE and result == ACTIVE:
        assert opted is not None and (changed is None or opted > changed)
        assert given_status in (None, ACTIVE)
    if stored == ACTIVE and given_status is not None:
        assert result == given_status


@given(
    stored=st.dictionaries(st.sampled_from("abcd"), st.integers()),
    given_values=st.dictionaries(st.sampled_from("cdef"), st.none() | st.integers()),
)
def test_merged_attributes_change_only_the_given_keys(
    stored: dict[str, int], given_values: dict[str, int | None]
) -> None:
    merged = merge_attributes(stored, given_values)
    for key in set(stored) | set(given_values):
        if key not in given_values:
            assert merged[key] == stored[key]
        elif given_values[key] is None:
            assert key not in merged
        else:
            assert merged[key] == given_values[key]
