"""Cadence rules as pure functions: may this subscriber get a message at this time, and when?

Given a subscriber's status, suppression, preferences, timezone and the send times of their
other messages (planned or sent), :func:`check_cadence` returns a :class:`CadenceDecision`:
ok or a skip reason, and the UTC time to send. Windows and their edges:

* ``frequency_cap_7d``: messages at times ``t`` with ``send_at - 7 days < t <= send_at``; a
  message sent exactly 7 days earlier has left the window.
* ``frequency_cap_day``: messages on the same calendar day in the subscriber's timezone.
* ``min_gap``: a message closer than ``min_gap_hours`` (either side; exactly H hours is fine).
* quiet hours ``[start, end)`` in local time, spanning midnight when ``start > end``; a message
  due inside them is deferred to the next local ``end`` (reason ``quiet_hours_deferred``, still
  planned). DST is handled by zoneinfo: local wall times are converted on their own date.
* preferences: ``paused`` never, ``monthly`` at most one message per 30 days.

Suppression always wins: it is checked first, before any preference or cap.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

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


def local_wall_time(day: date, at: time, tz: ZoneInfo) -> datetime:
    """The UTC instant of wall time `at` on `day` in `tz`.

    PEP 495 fold=0: a wall time skipped by DST moves forward, a repeated one is the first.
    """
    return datetime.combine(day, at, tzinfo=tz).astimezone(UTC)


def digest_send_time(*, scheduled_for: datetime, tz: ZoneInfo, hour: int) -> datetime:
    """The subscriber's local send hour on the run's date (the date of `scheduled_for` there)."""
    return _digest_send_time(scheduled_for, tz, hour)


@lru_cache(maxsize=4096)
def _digest_send_time(scheduled_for: datetime, tz: ZoneInfo, hour: int) -> datetime:
    day = scheduled_for.astimezone(tz).date()
    return local_wall_time(day, time(hour), tz)


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
    local = moment.astimezone(tz)
    for offset in range(3):
        candidate = local_wall_time(local.date() + timedelta(days=offset), quiet[1], tz)
        if candidate > moment:
            return candidate
    raise AssertionError("unreachable: an end of quiet hours lies within two days")


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
    if reason is None and frequency == "paused":
        reason = "paused"
    if reason is not None:
        return CadenceDecision(ok=False, send_at=due, reason=reason)
    send_at, note = due, None
    if rules.quiet_hours and in_quiet_hours(due.astimezone(tz).time(), rules.quiet_hours):
        send_at, note = quiet_hours_end(due, tz, rules.quiet_hours), QUIET_DEFERRED
    if frequency == "monthly" and any(send_at - timedelta(days=30) < t <= send_at for t in others):
        return CadenceDecision(ok=False, send_at=send_at, reason="frequency_monthly")
    cap = cap_reason(send_at=send_at, others=others, tz=tz, rules=rules)
    if cap is not None:
        return CadenceDecision(ok=False, send_at=send_at, reason=cap)
    return CadenceDecision(ok=True, send_at=send_at, reason=note)
