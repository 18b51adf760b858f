"""Cadence rules at their edges: windows, DST, quiet hours across midnight, pause, suppression."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from newsletter.plan.cadence import (
    check_cadence,
    digest_send_time,
    in_quiet_hours,
    quiet_hours_end,
    zone,
)
from newsletter.plan.campaigns import CadenceRules

RULES = CadenceRules(max_per_day=1, max_per_7_days=1, min_gap_hours=0, quiet_hours=None)
BERLIN = zone("Europe/Berlin")
T0 = datetime(2026, 3, 10, 8, 0, tzinfo=UTC)


def decide(others: list[datetime], rules: CadenceRules = RULES, **kw: object) -> object:
    args: dict[str, object] = {
        "due": T0,
        "tz": zone("UTC"),
        "status": "active",
        "frequency": "weekly",
        "others": others,
        "rules": rules,
    }
    args.update(kw)
    return check_cadence(**args)  # type: ignore[arg-type]


def test_a_message_exactly_seven_days_ago_has_left_the_window() -> None:
    assert decide([T0 - timedelta(days=7)]).ok  # type: ignore[attr-defined]
    capped = decide([T0 - timedelta(days=7) + timedelta(seconds=1)])
    assert capped.reason == "frequency_cap_7d"  # type: ignore[attr-defined]


def test_daily_cap_counts_the_subscribers_local_calendar_day() -> None:
    rules = CadenceRules(max_per_day=1, max_per_7_days=9, min_gap_hours=0, quiet_hours=None)
    # 23:30 UTC on Mar 9 is 00:30 on Mar 10 in Berlin: the same local day as T0 (09:00 there).
    late = datetime(2026, 3, 9, 23, 30, tzinfo=UTC)
    assert decide([late], rules, tz=BERLIN).reason == "frequency_cap_day"  # type: ignore[attr-defined]
    assert decide([late], rules, tz=zone("UTC")).ok  # type: ignore[attr-defined]


def test_min_gap_is_exclusive_at_exactly_h_hours() -> None:
    rules = CadenceRules(max_per_day=9, max_per_7_days=9, min_gap_hours=20, quiet_hours=None)
    assert decide([T0 - timedelta(hours=20)], rules).ok  # type: ignore[attr-defined]
    near = decide([T0 - timedelta(hours=19, minutes=59)], rules)
    assert near.reason == "min_gap"  # type: ignore[attr-defined]


def test_digest_send_hour_follows_daylight_saving_in_the_subscribers_timezone() -> None:
    before = digest_send_time(scheduled_for=datetime(2026, 3, 28, 0, tzinfo=UTC), tz=BERLIN, hour=8)
    after = digest_send_time(scheduled_for=datetime(2026, 3, 29, 0, tzinfo=UTC), tz=BERLIN, hour=8)
    assert before == datetime(2026, 3, 28, 7, tzinfo=UTC)  # CET, UTC+1
    assert after == datetime(2026, 3, 29, 6, tzinfo=UTC)  # CEST, UTC+2 from that night
    assert after.astimezone(BERLIN).hour == 8


def test_west_of_utc_the_send_hour_is_the_next_one_after_the_scheduled_time() -> None:
    # Monday 06:00 UTC is Sunday 23:00 in Los Angeles: Sunday 08:00 has passed, so the
    # message is due on Monday 08:00 local (15:00 UTC), never at once inside quiet hours.
    los_angeles = zone("America/Los_Angeles")
    monday = datetime(2026, 6, 1, 6, tzinfo=UTC)
    due = digest_send_time(scheduled_for=monday, tz=los_angeles, hour=8)
    assert due == datetime(2026, 6, 1, 15, tzinfo=UTC)
    # east of UTC the same run reaches Tokyo after Monday 08:00 there: Tuesday 08:00
    tokyo = digest_send_time(scheduled_for=monday, tz=zone("Asia/Tokyo"), hour=8)
    assert tokyo == datetime(2026, 6, 1, 23, tzinfo=UTC)
    # a run scheduled exactly at the local hour sends at that hour
    assert digest_send_time(scheduled_for=due, tz=los_angeles, hour=8) == due


def test_skipped_and_repeated_send_hours_on_dst_change_days() -> None:
    new_york = zone("America/New_York")
    # 2026-03-08: 02:00 EST jumps to 03:00 EDT; 02:00 is reached when the jump ends
    spring = digest_send_time(
        scheduled_for=datetime(2026, 3, 8, 5, tzinfo=UTC), tz=new_york, hour=2
    )
    assert spring == datetime(2026, 3, 8, 7, tzinfo=UTC)
    assert spring.astimezone(new_york).hour == 3
    # 2026-11-01: 01:00 happens twice (EDT, then EST); during the first, the second is next
    first = datetime(2026, 11, 1, 5, tzinfo=UTC)  # 01:00 EDT
    assert digest_send_time(scheduled_for=first, tz=new_york, hour=1) == first
    second = digest_send_time(scheduled_for=first + timedelta(minutes=1), tz=new_york, hour=1)
    assert second == datetime(2026, 11, 1, 6, tzinfo=UTC)  # 01:00 EST


def test_quiet_hours_end_across_the_dst_night_is_local_eight_oclock() -> None:
    quiet = (time(21), time(8))
    due = datetime(2026, 3, 28, 22, 30, tzinfo=UTC)  # 23:30 CET, in quiet hours
    end = quiet_hours_end(due, BERLIN, quiet)
    assert end == datetime(2026, 3, 29, 6, tzinfo=UTC)
    assert end.astimezone(BERLIN).time() == time(8)


def test_quiet_hours_spanning_midnight() -> None:
    quiet = (time(21), time(8))
    assert in_quiet_hours(time(21), quiet)
    assert in_quiet_hours(time(23, 59), quiet)
    assert in_quiet_hours(time(0), quiet)
    assert in_quiet_hours(time(7, 59), quiet)
    assert not in_quiet_hours(time(8), quiet)
    assert not in_quiet_hours(time(20, 59), quiet)
    assert not in_quiet_hours(time(3), None)


def test_trigger_due_in_quiet_hours_is_deferred_to_local_end_of_quiet() -> None:
    rules = CadenceRules(quiet_hours=(time(21), time(8)))
    due = datetime(2026, 6, 1, 21, 30, tzinfo=UTC)  # 23:30 in Berlin (CEST)
    decision = decide([], rules, due=due, tz=BERLIN)
    assert decision.ok and decision.deferred  # type: ignore[attr-defined]
    assert decision.reason == "quiet_hours_deferred"  # type: ignore[attr-defined]
    assert decision.send_at == datetime(2026, 6, 2, 6, tzinfo=UTC)  # type: ignore[attr-defined]


def test_caps_are_checked_at_the_deferred_time() -> None:
    rules = CadenceRules(quiet_hours=(time(21), time(8)), min_gap_hours=20)
    due = datetime(2026, 6, 1, 21, 30, tzinfo=UTC)
    earlier = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)  # 18 h before the deferred time
    assert decide([earlier], rules, due=due, tz=BERLIN).reason == "min_gap"  # type: ignore[attr-defined]


def test_paused_subscriber_gets_nothing_and_monthly_waits_thirty_days() -> None:
    assert decide([], frequency="paused").reason == "paused"  # type: ignore[attr-defined]
    rules = CadenceRules(max_per_7_days=9, max_per_day=9, min_gap_hours=0, quiet_hours=None)
    ago = [T0 - timedelta(days=20)]
    assert decide(ago, rules, frequency="monthly").reason == "frequency_monthly"  # type: ignore[attr-defined]
    assert decide(ago, rules, frequency="weekly").ok  # type: ignore[attr-defined]


def test_suppression_beats_everything() -> None:
    rules = CadenceRules(quiet_hours=(time(0), time(23, 59)))
    busy = [T0 - timedelta(hours=1)] * 5
    # the subscriber's own status names the cause; a suppression row alone says 'suppressed'
    for status, reason in (("active", "suppressed"), ("unsubscribed", "unsubscribed")):
        d = decide(busy, rules, status=status, frequency="paused", suppressed="complained")
        assert d.reason == reason and not d.ok  # type: ignore[attr-defined]
    for status in ("unsubscribed", "bounced", "complained"):
        assert decide(busy, rules, status=status, frequency="paused").reason == status  # type: ignore[attr-defined]
