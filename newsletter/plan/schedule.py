"""When a digest campaign is due: its cron schedule (UTC), read with APScheduler's parser.

``latest_due("0 8 * * mon", now=..., window=timedelta(days=1))`` is the most recent fire time
in ``(now - window, now]``, or None; a scheduler ticking every few minutes creates each run once
(runs are unique per campaign and scheduled time) and catches up at most ``window`` late.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

MAX_FIRES = 10_000  # bounds the walk for very frequent schedules


class ScheduleError(ValueError):
    """A campaign's schedule is not a cron expression; the message names it and the fix."""


def latest_due(schedule: str, *, now: datetime, window: timedelta) -> datetime | None:
    """The latest fire time of a five-field cron expression (UTC) in ``(now - window, now]``."""
    from apscheduler.triggers.cron import CronTrigger

    try:
        trigger = CronTrigger.from_crontab(schedule, timezone=UTC)
    except ValueError as exc:
        raise ScheduleError(
            f"schedule {schedule!r} is not a cron expression ('minute hour day month weekday',"
            f" e.g. '0 8 * * mon'): {exc}"
        ) from exc
    start = now - window + timedelta(seconds=1)
    fire, latest = trigger.get_next_fire_time(None, start), None
    for _ in range(MAX_FIRES):
        if fire is None or fire > now:
            break
        latest = fire
        fire = trigger.get_next_fire_time(fire, fire + timedelta(seconds=1))
    return None if latest is None else latest.astimezone(UTC)
