"""Cadence rules as pure functions: may this subscriber get a message at this time, and when?

Given a subscriber's status, suppression, preferences, timezone and the send times of their
other messages (planned or sent), :func:`check_cadence` returns a :class:`CadenceDecision`:
ok or a skip reason, and the UTC time to send. Windows and their edges:

* ``frequency_cap_7d``: messages at times ``t`` with ``send_at - 7 days < t <= send_at``; a
  message sent exactly 7 days earlier has left the window.
* ``frequency_cap_day``: messages on the same calendar day in the subscriber's timezone.
* ``min_gap``: a message closer than ``min_gap_hours`` (either side; exactly H hours is fine).
* a digest is due at the subscriber's local send hour: the first moment at or after the run's
  ``scheduled_for`` when their clock shows it (:func:`next_wall_time`), so west of UTC a run
  scheduled Monday 06:00 UTC goes out Monday 08:00 local, never at a past Sunday 08:00.
* quiet hours ``[start, end)`` in local time, spanning midnight when ``start > end``; a message
  due inside them is deferred to the next local ``end`` (reason ``quiet_hours_deferred``, still
  planned). The dispatcher checks them again at the actual send time (:func:`quiet_until`).
  DST: a wall time the clock skips (spring forward) is reached at the end of the skip; a
  repeated one (fall back) counts at both of its instants.
* preferences: ``paused`` never, ``monthly`` at most one message per 30 days.

Suppression always wins: it is checked first, before any preference or cap.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from newsletter.enums import Frequency
from newsletter.plan.campaigns import CadenceRules

SKIP_STATUSES = ("unsubscribed", "bounced", "complained", "placeholder", "erased")
QUIET_DEFERRED = "quiet_hours_deferred"


@dataclass(frozen=True)
class CadenceDecision:
    """The verdict for one subscriber: send (maybe deferred) or skip with a reason."""

    ok: bool
    send_at: datetime
    reason: str | None = None

    @property
    def deferred(self) -> bool:
        return self.ok and self.reason == QUIET_DEFERRED


@lru_cache(maxsize=1024)
def zone(name: str | None, default: str = "UTC") -> ZoneInfo:
    """The subscriber's ZoneInfo; an unknown or empty name falls back to `default`."""
    try:
        return ZoneInfo(name or default)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(default)


def _wall(moment: datetime, tz: ZoneInfo) -> datetime:
    """The naive local wall time of a UTC instant."""
    return moment.astimezone(tz).replace(tzinfo=None)


def _end_of_skip(before: datetime, after: datetime, target: datetime, tz: ZoneInfo) -> datetime:
    """The first minute in (before, after] whose wall time is at or past `target` (the clock
    jumped over `target` between the two instants)."""
    low, high = before, after  # wall(low) < target <= wall(high)
    while high - low > timedelta(minutes=1):
        middle = low + (high - low) / 2
        middle = middle.replace(second=0, microsecond=0)
        if middle <= low:
            break
        if _wall(middle, tz) >= target:
            high = middle
        else:
            low = middle
    return high


def local_wall_time(day: date, at: time, tz: ZoneInfo) -> datetime:
    """The UTC instant of wall time `at` on `day` in `tz` (a digest scheduled in local time).

    PEP 495 fold=0: a wall time skipped by DST moves forward, a repeated one is the first.
    """
    return datetime.combine(day, at, tzinfo=tz).astimezone(UTC)


def next_wall_time(after: datetime, tz: ZoneInfo, at: time) -> datetime:
    """The first instant at or after `after` when the clock in `tz` shows `at` (in UTC).

    A repeated wall time (DST fall back) occurs at both of its instants; on a day the clock
    skips `at` (spring forward), the instant the skip ends counts as reaching it.
    """
    return _next_wall_time(after.astimezone(UTC), tz, at)


@lru_cache(maxsize=8192)
def _next_wall_time(after: datetime, tz: ZoneInfo, at: time) -> datetime:
    day = _wall(after, tz).date()
    found: list[datetime] = []
    for offset in (-1, 0, 1, 2):  # -1: a fall back at midnight repeats the previous date
        target = datetime.combine(day + timedelta(days=offset), at)
        instants = {target.replace(tzinfo=tz, fold=f).astimezone(UTC) for f in (0, 1)}
        exact = [t for t in instants if _wall(t, tz) == target]
        if exact:
            found.extend(exact)
        else:  # skipped: reached when the skip ends, between the two candidate instants
            found.append(_end_of_skip(min(instants), max(instants), target, tz))
    return min(t for t in found if t >= after)


def digest_send_time(*, scheduled_for: datetime, tz: ZoneInfo, hour: int) -> datetime:
    """The subscriber's local send hour: its first occurrence at or after `scheduled_for`."""
    return next_wall_time(scheduled_for, tz, time(hour))


def in_quiet_hours(local: time, quiet: tuple[time, time] | None) -> bool:
    """Whether a local wall time lies in ``[start, end)``; start > end spans midnight."""
    if quiet is None or quiet[0] == quiet[1]:
        return False
    start, end = quiet
    if start < end:
        return start <= local < end
    return local >= start or local < end


def quiet_hours_end(moment: datetime, tz: ZoneInfo, quiet: tuple[time, time]) -> datetime:
    """The first local `end` of the quiet window strictly after `moment` (returned in UTC)."""
    return next_wall_time(moment + timedelta(microseconds=1), tz, quiet[1])


def quiet_until(moment: datetime, tz: ZoneInfo, quiet: tuple[time, time] | None) -> datetime | None:
    """When a message may go out if `moment` lies in the local quiet hours, else None: the next
    local end of quiet hours (the next one again if a DST skip lands that one inside them)."""
    if quiet is None or not in_quiet_hours(moment.astimezone(tz).time(), quiet):
        return None
    until = quiet_hours_end(moment, tz, quiet)
    for _ in range(3):
        if not in_quiet_hours(until.astimezone(tz).time(), quiet):
            break
        until = quiet_hours_end(until, tz, quiet)
    return until


def suppression_reason(*, status: str, suppressed: str | None) -> str | None:
    """Why an address may never be emailed ('bounced', 'unsubscribed', 'suppressed'...), else None.

    The subscriber's own status names the cause best (a bounce also adds a suppression row),
    so it comes first; a suppression row alone (an imported do-not-mail list) is 'suppressed'.
    """
    if status in SKIP_STATUSES:
        return status
    if suppressed:
        return "suppressed"
    return None


def cap_reason(
    *, send_at: datetime, others: Sequence[datetime], tz: ZoneInfo, rules: CadenceRules
) -> str | None:
    """The first cadence cap that sending at `send_at` would break, else None."""
    if not others and rules.max_per_7_days > 0 and rules.max_per_day > 0:
        return None
    week = sum(1 for t in others if send_at - timedelta(days=7) < t <= send_at)
    if week >= rules.max_per_7_days:
        return "frequency_cap_7d"
    day = send_at.astimezone(tz).date()
    if sum(1 for t in others if t.astimezone(tz).date() == day) >= rules.max_per_day:
        return "frequency_cap_day"
    gap = timedelta(hours=rules.min_gap_hours)
    if any(abs(send_at - t) < gap for t in others):
        return "min_gap"
    return None


def check_cadence(
    *,
    due: datetime,
    tz: ZoneInfo,
    status: str,
    frequency: str,
    others: Sequence[datetime],
    rules: CadenceRules,
    suppressed: str | None = None,
) -> CadenceDecision:
    """Decide whether a message due at `due` may go out, deferring it out of quiet hours.

    `others` are the times (sent_at, else planned_for) of the subscriber's other live
    messages; `suppressed` is the reason of a Suppression row for their address, if any.
    """
    reason = suppression_reason(status=status, suppressed=suppressed)
    if reason is None and frequency == Frequency.paused:
        reason = "paused"
    if reason is not None:
        return CadenceDecision(ok=False, send_at=due, reason=reason)
    send_at, note = due, None
    deferred = quiet_until(due, tz, rules.quiet_hours)
    if deferred is not None:
        send_at, note = deferred, QUIET_DEFERRED
    if frequency == Frequency.monthly and any(
        send_at - timedelta(days=30) < t <= send_at for t in others
    ):
        return CadenceDecision(ok=False, send_at=send_at, reason="frequency_monthly")
    cap = cap_reason(send_at=send_at, others=others, tz=tz, rules=rules)
    if cap is not None:
        return CadenceDecision(ok=False, send_at=send_at, reason=cap)
    return CadenceDecision(ok=True, send_at=send_at, reason=note)
