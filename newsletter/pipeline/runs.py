"""Steps 1-4 of a run's life and the three forms of `newsletter run` (see the package doc)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from contextlib import nullcontext
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from newsletter.config import Settings
from newsletter.db import Engine, as_utc
from newsletter.deliver.dispatch import (
    UNKNOWN_REASONS,
    DeliveryPaused,
    DispatchResult,
    compile_for_run,
    refuse_halted,
)
from newsletter.deliver.policy import DeliveryPolicy
from newsletter.deliver.ratelimit import global_bucket
from newsletter.deliver.shards import (
    ProgressSink,
    RunSummary,
    StartedProgress,
    shard_progress,
    start_pass,
)
from newsletter.deliver.status import settle_run
from newsletter.deliver.transport import transport_from_url
from newsletter.models import MessageStatus, RunStatus
from newsletter.plan.planner import PlanResult, SettledCounter, finish_plan
from newsletter.plan.runs import (
    PlanError,
    RunPlan,
    SlotSourceFactory,
    load_members,
    load_plan,
    plan_complete,
    prepare_run,
)
from newsletter.progress import Tick, silent
from newsletter.store import delivery as store
from newsletter.store import runs as run_control
from newsletter.store.planning import discard_unsent_run
from newsletter.store.runs import (
    run_row,
    run_status,
)
from newsletter.tasks import DeliverShard, Executor, InProcess, PlanShard, Worker, database_url

PLAN_AHEAD = timedelta(hours=15)  # UTC+14 reaches a local time first; plan an hour before
RELEASABLE = (RunStatus.planned, RunStatus.waiting, RunStatus.paused)
CLAIMABLE = (MessageStatus.planned, MessageStatus.rendered, MessageStatus.sending)


def create_run(
    engine: Engine,
    *,
    campaign: str,
    now: datetime,
    settings: Settings,
    scheduled_for: datetime | None = None,
    shard_count: int = 1,
    source_factory: SlotSourceFactory | None = None,
    segment_folder: Path | None = None,
    seed: int = 0,
    local_schedule: bool = False,
) -> RunPlan:
    """Create (or find) the run of ``campaign`` for ``scheduled_for`` (default ``now``) and
    store its plan, members and fitted model; a prepared run keeps what it has."""
    return prepare_run(
        engine,
        campaign=campaign,
        now=now,
        settings=settings,
        scheduled_for=scheduled_for,
        shard_count=shard_count,
        source_factory=source_factory,
        segment_folder=segment_folder,
        seed=seed,
        local_schedule=local_schedule,
    )


def plan_run(
    engine: Engine,
    *,
    run_id: int,
    now: datetime,
    executor: Executor | None = None,
    settings: Settings | None = None,
    progress: Tick = silent,
) -> PlanResult:
    """Plan every shard of a prepared run (idempotent: a complete plan is left alone).

    ``progress`` hears ("planning", members settled, members): per batch in this process,
    per finished shard from a process pool. A plan that fails deletes its run when nothing of
    it was handed to delivery (``store.planning.discard_unsent_run``).
    """
    plan = load_plan(engine, run_id=run_id)
    if plan is None:
        raise PlanError(f"run {run_id} is not prepared: create it first (newsletter plan)")
    counter = SettledCounter("planning", plan.members, progress)
    runner = executor or InProcess()
    try:
        new = 0
        if plan_complete(engine, run_id=run_id):
            counter(plan.members)
        else:
            url = database_url(engine)
            tasks = [PlanShard(url, run_id, shard) for shard in range(plan.shard_count)]
            local = runner.in_process
            lent = counter if local else None
            worker = Worker(engine=engine, settings=settings, plan_progress=lent)
            done = None if local else _shard_settled(engine, plan.run_id, plan.shard_count, counter)
            new = sum(runner.run(tasks, worker=worker, on_done=done))
        return finish_plan(engine, run_id=run_id, now=as_utc(now), new_messages=new)
    except BaseException:
        discard_unsent_run(engine, run_id=run_id)  # no half-made run stays behind
        raise


def _shard_settled(
    engine: Engine, run_id: int, shard_count: int, counter: SettledCounter
) -> Callable[[Any, Any], None]:
    """For shards planned in other processes: count each finished shard's members."""
    members = load_members(engine, run_id=run_id)
    sizes = Counter(int(m) % shard_count for m in members.tolist())

    def done(task: Any, _new: Any) -> None:
        counter(sizes.get(task.shard, 0))

    return done


def deliver_run(
    engine: Engine,
    *,
    run_id: int,
    now: datetime,
    settings: Settings,
    policy: DeliveryPolicy | None = None,
    transport_url: str | None = None,
    executor: Executor | None = None,
    progress: ProgressSink | None = None,
) -> RunSummary:
    """Deliver every shard of a run in one pass, then settle its status (finalize_run).

    The transport is ``transport_url`` (default ``settings.smtp_url``); in this process one
    connection serves every shard, a process pool opens one per shard. Raises
    :class:`DeliveryPaused` (the run is ``paused``) when the mail server cannot be reached.
    A run a person held or cancelled is not delivered, and one halted meanwhile stops at its
    next status check (``result.halted`` says which); it keeps that status.
    """
    policy = policy or DeliveryPolicy.from_settings(settings)
    runner = executor or InProcess()
    compile_for_run(engine, run_id=run_id)  # an unknown run or a broken template fails first
    if progress is not None:
        counts = store.run_counts(engine, run_id=run_id).by_status
        progress.start(sum(counts.get(s, 0) for s in CLAIMABLE))
    if not start_pass(engine, run_id=run_id, now=now, policy=policy):
        halted = DispatchResult(run_id, halted=run_status(engine, run_id=run_id))
        now_counts = store.run_counts(engine, run_id=run_id)
        return RunSummary(run_id, halted, now_counts, None, halted.halted)
    url, shards = database_url(engine), store.run_shards(engine, run_id=run_id)
    tasks = [DeliverShard(url, run_id, shard, transport_url) for shard in shards]
    result = DispatchResult(run_id)
    local = runner.in_process
    opened = (
        transport_from_url(transport_url or settings.smtp_url, bucket=global_bucket(settings))
        if local
        else nullcontext()
    )
    try:
        with opened as transport:
            worker = Worker(
                engine=engine, settings=settings, transport=transport, progress=progress
            )
            done = None if local or progress is None else shard_progress(progress)
            for shard_result in runner.run(tasks, worker=worker, on_done=done):
                result.add(shard_result)
    except DeliveryPaused:
        store.set_run_status(engine, run_id=run_id, status=RunStatus.paused, now=now)
        raise
    if policy.honour_send_time:
        result.waiting, result.next_send = store.waiting(engine, run_id=run_id, due_by=now)
    status = finalize_run(engine, run_id=run_id, now=now)
    return RunSummary(run_id, result, store.run_counts(engine, run_id=run_id), None, status)


def finalize_run(engine: Engine, *, run_id: int, now: datetime) -> RunStatus:
    """The run's status from its messages: ``delivered`` when nothing is left to send,
    ``waiting`` for send times to come, ``planning`` while a member has no message yet."""
    return settle_run(engine, run_id=run_id, now=now)


def run_campaign(
    engine: Engine,
    *,
    campaign: str,
    now: datetime,
    settings: Settings,
    transport_url: str | None = None,
    shard_count: int = 1,
    scheduled_for: datetime | None = None,
    policy: DeliveryPolicy | None = None,
    progress: ProgressSink | None = None,
    executor: Executor | None = None,
    source_factory: SlotSourceFactory | None = None,
    plan_progress: Tick = silent,
) -> RunSummary:
    """``newsletter run CAMPAIGN``: create and plan the run (idempotently), then deliver it.

    ``progress`` hears the delivery, ``plan_progress`` the planning (see ``plan_run``)."""
    transport_from_url(transport_url or settings.smtp_url).close()  # fails before planning
    plan = create_run(
        engine,
        campaign=campaign,
        now=now,
        settings=settings,
        scheduled_for=scheduled_for,
        shard_count=shard_count,
        source_factory=source_factory,
    )
    planned = plan_run(
        engine,
        run_id=plan.run_id,
        now=now,
        executor=executor,
        settings=settings,
        progress=plan_progress,
    )
    delivery: dict[str, Any] = {
        "policy": policy,
        "transport_url": transport_url,
        "progress": progress,
    }
    summary = deliver_run(
        engine, run_id=plan.run_id, now=now, settings=settings, executor=executor, **delivery
    )
    summary.plan = planned.stats
    return summary


def resume_run(
    engine: Engine,
    *,
    run_id: int,
    now: datetime,
    settings: Settings,
    transport_url: str | None = None,
    policy: DeliveryPolicy | None = None,
    progress: ProgressSink | None = None,
    executor: Executor | None = None,
) -> RunSummary:
    """``newsletter run resume RUN``: finish an interrupted run.

    Plans the members still without a message (a process stopped while planning), settles
    the messages left ``sending`` by ``policy.on_unknown``, then delivers what is left.
    """
    policy = policy or DeliveryPolicy.from_settings(settings)
    row = run_row(engine, run_id=run_id)
    compile_for_run(engine, run_id=run_id)  # an unknown run or a broken template fails first
    refuse_halted(engine, run_id=run_id)  # a person's pause or cancel stands
    replanned = None
    if row is not None and not plan_complete(engine, run_id=run_id):
        create_run(
            engine,
            campaign=row.campaign,
            now=now,
            settings=settings,
            scheduled_for=row.scheduled_for,
        )
        replanned = plan_run(engine, run_id=run_id, now=now, executor=executor, settings=settings)
    resend = policy.on_unknown == "resend"
    settled = store.reconcile_sending(engine, run_id=run_id, resend=resend, now=now)
    summary = deliver_run(
        engine,
        run_id=run_id,
        now=now,
        settings=settings,
        executor=executor,
        policy=policy,
        transport_url=transport_url,
        progress=progress,
    )
    summary.result.reconciled = settled
    summary.plan = None if replanned is None else replanned.stats
    return summary


def retry_failed_run(
    engine: Engine,
    *,
    run_id: int,
    now: datetime,
    settings: Settings,
    transport_url: str | None = None,
    include_unknown: bool = False,
    policy: DeliveryPolicy | None = None,
    progress: ProgressSink | None = None,
    executor: Executor | None = None,
) -> RunSummary:
    """``newsletter run retry-failed RUN``: re-send transient failures (and, with
    ``include_unknown``, outcomes unknown after a crash or a dropped connection)."""
    compile_for_run(engine, run_id=run_id)
    refuse_halted(engine, run_id=run_id)  # a person's pause or cancel stands
    reasons = store.RETRYABLE + (UNKNOWN_REASONS if include_unknown else ())
    if progress is not None:
        failed = store.run_counts(engine, run_id=run_id).failed
        progress.start(sum(failed.get(r, 0) for r in reasons))
        progress = StartedProgress(progress)
    requeued = store.requeue_failed(engine, run_id=run_id, reasons=reasons, now=now)
    summary = deliver_run(
        engine,
        run_id=run_id,
        now=now,
        settings=settings,
        executor=executor,
        policy=policy,
        transport_url=transport_url,
        progress=progress,
    )
    summary.result.reconciled = requeued
    return summary


def hold_run(engine: Engine, *, run_id: int) -> bool:
    """A person pauses a run (``held``): delivery stops at its next status check (within a
    second) and nothing delivers it until :func:`release_run`. False: nothing to pause."""
    return run_control.hold_run(engine, run_id=run_id)


def release_run(engine: Engine, *, run_id: int) -> bool:
    """A person resumes a held run: it is ``waiting`` for the next delivery pass
    (:func:`deliver_run` or :func:`release_due`). False: the run was not held."""
    return run_control.release_run(engine, run_id=run_id)


def cancel_run(engine: Engine, *, run_id: int, now: datetime) -> int | None:
    """A person cancels a run: every message not yet handed to the mail server is skipped
    (reason ``cancelled``), for good; how many, or None when it cannot be cancelled."""
    return run_control.cancel_run(engine, run_id=run_id, now=now)
