"""Steps 5-6: what a scheduler calls (`tick`, `release_due`) and the behavioural triggers."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from newsletter.config import Settings
from newsletter.db import Engine
from newsletter.deliver.dispatch import (
    DeliveryError,
)
from newsletter.deliver.policy import DeliveryPolicy
from newsletter.deliver.shards import (
    RunSummary,
)
from newsletter.pipeline.runs import (
    PLAN_AHEAD,
    RELEASABLE,
    create_run,
    deliver_run,
    plan_run,
)
from newsletter.plan.campaigns import CampaignConfigError
from newsletter.plan.planner import PlanResult
from newsletter.plan.runs import (
    PlanError,
    find_campaign,
    plan_complete,
)
from newsletter.plan.schedule import ScheduleError, latest_due
from newsletter.plan.segments import SegmentError
from newsletter.store.ingest import record_interactions
from newsletter.store.runs import (
    run_id_for,
    runs_with_due_messages,
    scheduled_campaigns,
)
from newsletter.store.triggers import trigger_campaigns
from newsletter.tasks import Executor
from newsletter.triggers import engine as trigger_engine


def release_due(
    engine: Engine,
    *,
    now: datetime,
    settings: Settings,
    policy: DeliveryPolicy | None = None,
    transport_url: str | None = None,
    executor: Executor | None = None,
) -> list[RunSummary]:
    """Send the messages whose local send time has come, in every run that holds some
    (``planned``, ``waiting`` or ``paused``). Raises DeliveryPaused when the server is down."""
    base = policy or DeliveryPolicy.from_settings(settings)
    chosen = replace(base, honour_send_time=True)
    return [
        deliver_run(
            engine,
            run_id=run_id,
            now=now,
            settings=settings,
            policy=chosen,
            transport_url=transport_url,
            executor=executor,
        )
        for run_id in runs_with_due_messages(engine, due_by=now, statuses=RELEASABLE)
    ]


def fire_trigger(
    engine: Engine,
    *,
    campaign: str,
    subscriber_id: int,
    now: datetime,
    settings: Settings,
    event: dict[str, Any] | None = None,
) -> RunSummary | None:
    """Answer one subscriber's behaviour with their message in a trigger campaign's run.

    Records ``event`` (an interaction: ``subscriber_key``, ``item_key``, ``kind``,
    ``occurred_at``) if given, evaluates the triggers, then fires the campaign's states of
    this subscriber that are due at ``now`` and delivers what is due. None when nothing is due
    (a cart waits for its hour; a purchase cancelled it).
    """
    if event is not None:
        record_events(engine, events=[event], now=now, settings=settings)
    else:
        trigger_engine.evaluate(engine, now=now)
    found = find_campaign(engine, campaign)
    if found.kind != "trigger":
        raise PlanError(f"campaign {campaign!r} is a {found.kind}, not a trigger campaign")
    firing = trigger_engine.fire_due(
        engine, campaign=found, now=now, settings=settings, subscriber_id=subscriber_id
    )
    if firing is None:
        return None
    chosen = replace(DeliveryPolicy.from_settings(settings), honour_send_time=True)
    return deliver_run(engine, run_id=firing.run_id, now=now, settings=settings, policy=chosen)


def record_events(
    engine: Engine, *, events: list[dict[str, Any]], now: datetime, settings: Settings
) -> trigger_engine.Evaluation:
    """The events API's entry: store interactions (keyed by ``subscriber_key`` and
    ``item_key``), then evaluate the triggers on them at once. A bad row raises ValueError
    naming it."""
    record_interactions(engine, events=events, default_timezone=settings.default_timezone)
    return trigger_engine.evaluate(engine, now=now)


def sweep_triggers(
    engine: Engine, *, now: datetime, settings: Settings
) -> tuple[list[trigger_engine.Firing], list[str]]:
    """Evaluate behaviour that arrived by other paths (import, sync), then fire every trigger
    campaign's due states (delayed conditions: a cart after its hour, a welcome on day 3)."""
    evaluation = trigger_engine.evaluate(engine, now=now)
    fired, errors = [], list(evaluation.errors)
    for campaign in trigger_campaigns(engine):
        try:
            firing = trigger_engine.fire_due(engine, campaign=campaign, now=now, settings=settings)
        except (trigger_engine.TriggerError, PlanError, CampaignConfigError) as exc:
            if str(exc) not in errors:
                errors.append(str(exc))
            continue
        if firing is not None:
            fired.append(firing)
    return fired, errors


@dataclass
class TickResult:
    """What one scheduler tick did: runs created or completed, deliveries, and errors."""

    planned: list[PlanResult] = field(default_factory=list)
    fired: list[trigger_engine.Firing] = field(default_factory=list)
    released: list[RunSummary] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def plan_due_digests(
    engine: Engine,
    *,
    now: datetime,
    settings: Settings,
    catch_up: timedelta = timedelta(days=1),
    executor: Executor | None = None,
) -> tuple[list[PlanResult], list[str]]:
    """Create and plan each active digest's run whose local cron time is reached anywhere
    within PLAN_AHEAD (the earliest timezone, UTC+14, plus an hour), once per fire time.

    The cron expression is read in the subscribers' local time: the run's ``scheduled_for``
    is that wall time written in UTC, and each subscriber is due at it in their own zone.
    """
    planned, errors = [], []
    for name, schedule in scheduled_campaigns(engine, kind="digest"):
        try:
            due = latest_due(schedule, now=now + PLAN_AHEAD, window=catch_up + PLAN_AHEAD)
            if due is None:
                continue
            found = run_id_for(engine, campaign=name, scheduled_for=due)
            if found is not None and plan_complete(engine, run_id=found):
                continue
            plan = create_run(
                engine,
                campaign=name,
                now=now,
                settings=settings,
                scheduled_for=due,
                local_schedule=True,
            )
            planned.append(
                plan_run(engine, run_id=plan.run_id, now=now, executor=executor, settings=settings)
            )
        except (ScheduleError, PlanError, SegmentError, CampaignConfigError) as exc:
            errors.append(f"campaign {name!r}: {exc}")
    return planned, errors


def tick(
    engine: Engine,
    *,
    now: datetime,
    settings: Settings,
    catch_up: timedelta = timedelta(days=1),
    policy: DeliveryPolicy | None = None,
    transport_url: str | None = None,
    executor: Executor | None = None,
) -> TickResult:
    """One scheduler step at ``now``: :func:`plan_due_digests`, :func:`sweep_triggers`, then
    :func:`release_due`. A bad schedule or campaign is reported in ``errors``; the rest goes on.
    """
    out = TickResult()
    out.planned, out.errors = plan_due_digests(
        engine, now=now, settings=settings, catch_up=catch_up, executor=executor
    )
    out.fired, errors = sweep_triggers(engine, now=now, settings=settings)
    out.errors += errors
    try:
        out.released = release_due(
            engine,
            now=now,
            settings=settings,
            policy=policy,
            transport_url=transport_url,
            executor=executor,
        )
    except DeliveryError as exc:
        out.errors.append(str(exc))
    return out
