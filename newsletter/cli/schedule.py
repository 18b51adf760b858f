"""CLI: ``schedule list``, ``trigger test``, ``trigger list``, ``scheduler`` (registered by
:func:`register`; each command parses, calls one function and prints)."""

from __future__ import annotations

import logging
from datetime import UTC, timedelta
from pathlib import Path

import typer

from newsletter.cli.common import (
    ConfigOption,
    _when,
    console,
    fail,
    migrated_engine,
    settings_or_exit,
)

schedule_app = typer.Typer(no_args_is_help=True, help="Digest schedules: when runs fire.")
trigger_app = typer.Typer(no_args_is_help=True, help="Behavioural triggers: test and inspect.")
SAMPLE_ZONES = ("Pacific/Kiritimati", "Asia/Tokyo", "Europe/Paris", "America/New_York")


@schedule_app.command("list")
def schedule_list(
    count: int = typer.Option(3, min=1, help="Fire times per campaign."),
    at: str | None = typer.Option(None, help="From this time (ISO 8601; default now)."),
    config: Path | None = ConfigOption,
) -> None:
    """Next fire times per scheduled digest: local wall time, when planned, and sample zones."""
    from apscheduler.triggers.cron import CronTrigger

    from newsletter.pipeline import PLAN_AHEAD
    from newsletter.plan.cadence import local_wall_time, zone
    from newsletter.store.runs import scheduled_campaigns

    now = _when(at, "--at")
    engine = migrated_engine(settings_or_exit(config))
    for name, schedule in scheduled_campaigns(engine, kind="digest"):
        try:
            trigger = CronTrigger.from_crontab(schedule, timezone=UTC)
        except ValueError as exc:
            console.print(f"{name}: schedule {schedule!r} is not a cron expression: {exc}")
            continue
        console.print(f"{name} ({schedule}, local time)")
        fire = trigger.get_next_fire_time(None, now - timedelta(hours=12))
        for _ in range(count):
            if fire is None:
                break
            wall = fire.replace(tzinfo=None)
            local = ", ".join(
                f"{z.split('/')[-1]} {local_wall_time(wall.date(), wall.time(), zone(z)):%a %H:%M}Z"
                for z in SAMPLE_ZONES
            )
            planned = (fire - PLAN_AHEAD).isoformat(timespec="minutes")
            console.print(f"  {wall:%a %Y-%m-%d %H:%M} local; planned from {planned}; {local}")
            fire = trigger.get_next_fire_time(fire, fire + timedelta(seconds=1))


@trigger_app.command("test")
def trigger_test(
    campaign: str,
    subscriber: str = typer.Option(..., help="Subscriber id, email or external key."),
    at: str | None = typer.Option(None, help="Evaluate at this time (ISO 8601; default now)."),
    config: Path | None = ConfigOption,
) -> None:
    """Dry run: would CAMPAIGN fire for the subscriber, when, with which items -- or why not."""
    from newsletter.plan.campaigns import CampaignConfigError
    from newsletter.plan.runs import PlanError
    from newsletter.store.planning import subscriber_id
    from newsletter.triggers.dryrun import dry_run
    from newsletter.triggers.engine import TriggerError

    settings = settings_or_exit(config)
    engine = migrated_engine(settings)
    sid = subscriber_id(engine, key=subscriber)
    if sid is None:
        raise fail(f"--subscriber {subscriber!r}: no subscriber with that id, email or key", 2)
    try:
        result = dry_run(
            engine, campaign=campaign, subscriber_id=sid, at=_when(at, "--at"), settings=settings
        )
    except (PlanError, TriggerError, CampaignConfigError) as exc:
        raise fail(str(exc), 2) from exc
    for line in result.lines:
        console.print(line, markup=False, highlight=False)  # titles are data, not markup


@trigger_app.command("list")
def trigger_list(
    status: str = typer.Option("pending", help="pending, fired, cancelled or all."),
    limit: int = typer.Option(50, min=1),
    config: Path | None = ConfigOption,
) -> None:
    """Stored trigger states (pending ones by default), newest due first."""
    from newsletter.models import TriggerStatus
    from newsletter.store.triggers import states

    if status != "all" and status not in set(TriggerStatus):
        raise fail(f"--status {status!r}: expected pending, fired, cancelled or all", 2)
    engine = migrated_engine(settings_or_exit(config))
    rows = states(engine, status=None if status == "all" else status, limit=limit)
    if not rows:
        console.print(f"no {status} trigger states")
    for r in rows:
        extra = f" run {r.run_id}" if r.run_id else ""
        why = f" ({r.reason})" if r.reason else ""
        console.print(
            f"{r.campaign} subscriber {r.subscriber_id} {r.kind} {r.dedupe}: {r.status}{why} "
            f"due {r.due_at.isoformat(timespec='minutes')}{extra}"
        )


def start_scheduler(*, settings: object, engine: object, background: bool) -> object:
    """Configure this process's jobs and start the APScheduler scheduler."""
    from newsletter import scheduler

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    scheduler.configure(engine=engine, settings=settings)  # type: ignore[arg-type]
    running = scheduler.build_scheduler(engine=engine, background=background)  # type: ignore[arg-type]
    running.start()
    return running


def scheduler_command(
    once: bool = typer.Option(False, "--once", help="Run every job once and exit."),
    at: str | None = typer.Option(None, help="With --once: the time the jobs see (ISO 8601)."),
    config: Path | None = ConfigOption,
) -> None:
    """Run the scheduler alone (no web app): digests, trigger sweep and release, every minute."""
    from newsletter import scheduler

    settings = settings_or_exit(config)
    engine = migrated_engine(settings)
    if once:
        when = _when(at, "--at")
        scheduler.configure(engine=engine, settings=settings, clock=lambda: when)
        built = scheduler.build_scheduler(engine=engine)
        built.start(paused=True)  # stores the job definitions in the database
        scheduler.run_jobs_once()
        built.shutdown(wait=False)
        return
    start_scheduler(settings=settings, engine=engine, background=False)


def register(app: typer.Typer) -> None:
    """Add these commands to the main CLI."""
    app.add_typer(schedule_app, name="schedule")
    app.add_typer(trigger_app, name="trigger")
    app.command("scheduler")(scheduler_command)
