"""The long-running scheduler: APScheduler 3.x jobs that call pipeline functions, nothing else.

Three jobs, every minute, stored in the database (APScheduler's ``SQLAlchemyJobStore``, table
``apscheduler_jobs``, created by APScheduler on first start):

* ``digests`` -- :func:`newsletter.pipeline.plan_due_digests`: plan each digest whose local
  cron time comes within 15 hours (ahead of the earliest timezone);
* ``triggers`` -- :func:`newsletter.pipeline.sweep_triggers`: evaluate new behaviour, fire due
  trigger states (a cart after its hour, welcome day 3);
* ``release`` -- :func:`newsletter.pipeline.release_due`: send what has become due.

Misfires: a job that could not run on time (the process was down or busy) still runs if it
is at most ``MISFIRE_GRACE`` late; ``coalesce`` folds several missed runs into one. Nothing is
lost by either: every job looks at the database as of ``now`` and catches up (a digest up to a
day late), and nothing is repeated: runs are unique per (campaign, scheduled_for), messages per
(run, subscriber), trigger states are claimed by a conditional UPDATE. Two scheduler processes
on one database may both run a job; they create one run and send each message once
(``tests/scheduler/test_scheduler_processes.py`` starts two real ones). Two processes starting
at the same moment may both try to create the job table; the second one's failure is ignored
once the table exists.

Time is the ``clock`` given to :func:`configure` (the wall clock in production, a fake one in
tests), so tests drive the very job functions the scheduler runs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from newsletter import pipeline
from newsletter.config import Settings
from newsletter.db import Engine, create_table_once
from newsletter.deliver.dispatch import DeliveryError

log = logging.getLogger("newsletter.scheduler")
MISFIRE_GRACE = 300  # seconds a job may run late
JOBS = ("digests", "triggers", "release")
Clock = Callable[[], datetime]


def wall_clock() -> datetime:
    return datetime.now(UTC)


@dataclass
class Service:
    """What the jobs of this process work with."""

    engine: Engine
    settings: Settings
    clock: Clock = wall_clock


_SERVICE: Service | None = None


def configure(*, engine: Engine, settings: Settings, clock: Clock = wall_clock) -> Service:
    """Set the engine, settings and clock the jobs of this process use."""
    global _SERVICE
    _SERVICE = Service(engine, settings, clock)
    return _SERVICE


def _service() -> Service:
    if _SERVICE is None:
        raise RuntimeError("newsletter.scheduler.configure() was not called in this process")
    return _SERVICE


def digests_job() -> None:
    """Plan the digests whose local send time is coming."""
    svc = _service()
    now = svc.clock()
    planned, errors = pipeline.plan_due_digests(svc.engine, now=now, settings=svc.settings)
    for p in planned:
        log.info("planned run %s of %r for %s: %s", p.run_id, p.campaign, p.scheduled_for, p.stats)
    for error in errors:
        log.error("%s", error)


def triggers_job() -> None:
    """Evaluate new behaviour and fire the trigger states that are due."""
    svc = _service()
    fired, errors = pipeline.sweep_triggers(svc.engine, now=svc.clock(), settings=svc.settings)
    for f in fired:
        log.info(
            "trigger %r run %s: %s planned, skipped %s", f.campaign, f.run_id, f.planned, f.skipped
        )
    for error in errors:
        log.error("%s", error)


def release_job() -> None:
    """Send the messages whose local send time has come; log each run's progress."""
    svc = _service()
    try:
        released = pipeline.release_due(svc.engine, now=svc.clock(), settings=svc.settings)
    except DeliveryError as exc:
        log.error("delivery: %s", exc)
        return
    for s in released:
        counts = s.counts.by_status
        log.info(
            "run %s: sent %s this minute, %s sent in all, %s waiting, status %s",
            s.run_id,
            s.result.sent,
            counts.get("sent", 0),
            s.result.waiting,
            s.status,
        )


FUNCTIONS: dict[str, Callable[[], None]] = {
    "digests": digests_job,
    "triggers": triggers_job,
    "release": release_job,
}


def build_scheduler(*, engine: Engine, background: bool = True) -> Any:
    """An APScheduler scheduler with the three jobs in the database's job store (replacing
    the stored definitions, so a restart neither loses nor doubles a job)."""
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from apscheduler.schedulers.background import BackgroundScheduler
    from apscheduler.schedulers.blocking import BlockingScheduler

    kind = BackgroundScheduler if background else BlockingScheduler
    store = SQLAlchemyJobStore(engine=engine)
    create_table_once(engine, store.jobs_t)
    scheduler = kind(
        jobstores={"default": store},
        job_defaults={"coalesce": True, "misfire_grace_time": MISFIRE_GRACE, "max_instances": 1},
        timezone=UTC,
    )
    for name, func in FUNCTIONS.items():
        scheduler.add_job(func, "interval", minutes=1, id=name, replace_existing=True)
    return scheduler


def run_jobs_once() -> None:
    """Run every job once, in order, at the configured clock's time (``--once``)."""
    for func in FUNCTIONS.values():
        func()
