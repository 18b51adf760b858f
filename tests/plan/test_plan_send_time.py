"""Send times over every timezone: the local send hour is the first one at or after the run's
scheduled time, and nothing is due inside the campaign's quiet hours in local time.

The expected answers are found by brute force: walking the UTC clock in 15-minute steps (every
timezone's offset is a multiple of 15 minutes) and reading the local clock at each step.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, available_timezones

from hypothesis import given, settings
from hypothesis import strategies as st

from newsletter.plan.cadence import in_quiet_hours, quiet_until
from newsletter.plan.campaigns import CadenceRules, CampaignConfig
from newsletter.plan.decide import decide
from newsletter.store.planning import Profile

ZONES = sorted(available_timezones())
STEP = timedelta(minutes=15)
YEAR = 2026


@lru_cache(maxsize=1)
def transition_days() -> list[tuple[str, datetime]]:
    """(zone, UTC noon of a day whose offset differs from the previous day's) in YEAR."""
    found = []
    start = datetime(YEAR, 1, 1, 12, tzinfo=UTC)
    for name in ZONES:
        tz = ZoneInfo(name)
        previous = start.astimezone(tz).utcoffset()
        for day in range(1, 366):
            moment = start + timedelta(days=day)
            offset = moment.astimezone(tz).utcoffset()
            if offset != previous:
                found.append((name, moment))
            previous = offset
    return found


def _wall(moment: datetime, tz: ZoneInfo) -> datetime:
    return moment.astimezone(tz).replace(tzinfo=None)


def _shows(before: datetime, now: datetime, tz: ZoneInfo, at: time) -> bool:
    """Whether the local clock shows `at` at `now`, or jumped over it since `before`."""
    wall_now, wall_before = _wall(now, tz), _wall(before, tz)
    for day in (wall_now.date(), wall_now.date() - timedelta(days=1)):
        target = datetime.combine(day, at)
        if wall_now == target or wall_before < target < wall_now:
            return True
    return False


def first_showing(after: datetime, tz: ZoneInfo, at: time, *, strict: bool = False) -> datetime:
    """Brute force: the first 15-minute step at (or strictly after) `after` when the local
    clock shows `at` or has just jumped over it."""
    t = datetime.fromtimestamp(-(-after.timestamp() // STEP.total_seconds()) * 900, UTC)
    while t < after or (strict and t == after) or not _shows(t - STEP, t, tz, at):
        t += STEP
    return t


def expected_due(scheduled: datetime, tz: ZoneInfo, hour: int, quiet: tuple[time, time] | None):
    due = first_showing(scheduled, tz, time(hour))
    if quiet is None or not in_quiet_hours(due.astimezone(tz).time(), quiet):
        return due
    while in_quiet_hours(due.astimezone(tz).time(), quiet):
        due = first_showing(due, tz, quiet[1], strict=True)
    return due


QUARTERS = st.builds(time, st.integers(0, 23), st.sampled_from([0, 15, 30, 45]))
QUIET = st.none() | st.tuples(QUARTERS, QUARTERS)
ANY_TIME = st.integers(0, 9 * 365 * 24 * 60).map(
    lambda m: datetime(2024, 1, 1, tzinfo=UTC) + timedelta(minutes=m)
)


@st.composite
def zone_and_time(draw: st.DrawFn) -> tuple[str, datetime]:
    """Any zone at any minute, or a zone on (or around) one of its DST change days."""
    if draw(st.booleans()):
        return draw(st.sampled_from(ZONES)), draw(ANY_TIME)
    name, noon = draw(st.sampled_from(transition_days()))
    return name, noon + timedelta(minutes=draw(st.integers(-36 * 60, 36 * 60)))


def _config(hour: int, quiet: tuple[time, time] | None) -> CampaignConfig:
    rules = CadenceRules(
        max_per_day=9, max_per_7_days=9, min_gap_hours=0, quiet_hours=quiet, send_hour_local=hour
    )
    return CampaignConfig(cadence=rules)


def test_the_sample_covers_both_hemispheres_and_dst_change_days() -> None:
    names = {name for name, _ in transition_days()}
    assert {"America/Los_Angeles", "Europe/Berlin", "Australia/Sydney"} <= names
    assert {"America/Santiago", "Pacific/Auckland", "Australia/Lord_Howe"} <= names


@settings(max_examples=400, deadline=None)
@given(where=zone_and_time(), hour=st.integers(0, 23), quiet=QUIET)
def test_a_digest_is_due_at_the_first_local_send_hour_and_never_in_quiet_hours(
    where: tuple[str, datetime], hour: int, quiet: tuple[time, time] | None
) -> None:
    name, scheduled = where
    tz = ZoneInfo(name)
    profile = Profile(1, "a@example.com", "active", name, "weekly", None)
    verdict = decide(
        profile,
        arm="personalized",
        others=[],
        config=_config(hour, quiet),
        kind="digest",
        scheduled_for=scheduled,
    )
    assert verdict.status == "planned"
    local = verdict.planned_for.astimezone(tz)
    assert verdict.planned_for >= scheduled
    assert not in_quiet_hours(local.time(), quiet)
    assert verdict.planned_for == expected_due(scheduled, tz, hour, quiet)
    deferred = verdict.reason == "quiet_hours_deferred"
    assert deferred == (verdict.planned_for != first_showing(scheduled, tz, time(hour)))


@settings(max_examples=300, deadline=None)
@given(where=zone_and_time(), quiet=st.tuples(QUARTERS, QUARTERS))
def test_at_send_time_a_message_in_quiet_hours_waits_for_their_end(
    where: tuple[str, datetime], quiet: tuple[time, time]
) -> None:
    name, moment = where
    tz = ZoneInfo(name)
    until = quiet_until(moment, tz, quiet)
    if not in_quiet_hours(moment.astimezone(tz).time(), quiet):
        assert until is None
        return
    assert until is not None and until > moment
    assert not in_quiet_hours(until.astimezone(tz).time(), quiet)
    expected = moment
    while in_quiet_hours(expected.astimezone(tz).time(), quiet):
        expected = first_showing(expected, tz, quiet[1], strict=True)
    assert until == expected
