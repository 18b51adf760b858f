"""Plan, render and deliver a campaign shard by shard; resume or retry a run; show progress.

    run_campaign(engine, *, campaign, now, settings, transport_url=None, shard_count=1, ...)
    resume_run(engine, *, run_id, now, settings, transport_url=None, ...)
    retry_failed_run(engine, *, run_id, now, settings, transport_url=None, include_unknown=False)

Each returns a :class:`RunSummary` whose counts are read back from the database (so they
agree with it, whatever happened in earlier, interrupted passes). The transport comes from
``transport_url`` (default ``settings.smtp_url``): ``smtp://…``, ``smtps://…``, ``outbox:DIR``
or ``memory:``. The crash-window policy is ``DispatchPolicy.on_unknown`` (see ``dispatch``);
a ``delivery_on_unknown`` setting, when the Settings object has one, sets the default.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Engine

from newsletter.config import Settings
from newsletter.deliver.dispatch import (
    DEFAULT_ON_UNKNOWN,
    DeliveryError,
    DispatchPolicy,
    DispatchResult,
    Outcome,
    dispatch_run,
    resume,
    retry_failed,
)
from newsletter.deliver.transport import Transport, transport_from_url
from newsletter.progress import Tick, silent
from newsletter.store import delivery as store
from newsletter.store.delivery import RunCounts


class ProgressSink(Protocol):
    """Told how many messages are to be delivered, then every outcome as it happens."""

    def start(self, total: int) -> None: ...

    def __call__(self, outcome: Outcome) -> None: ...


@dataclass
class RunSummary:
    """One delivery pass over a run: what this pass did, and the run's counts in the database."""

    run_id: int
    result: DispatchResult
    counts: RunCounts
    plan: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        """Plain data for JSON output."""
        r = self.result
        return {
            "run_id": self.run_id,
            "this_pass": {
                "sent": r.sent,
                "failed": r.failed,
                "skipped": r.skipped,
                "retried": r.retried,
                "reconciled": r.reconciled,
            },
            "waiting": {
                "count": r.waiting,
                "next_send": r.next_send.isoformat() if r.next_send else None,
            },
            "halted": r.halted,
            "by_status": self.counts.by_status,
            "skipped": self.counts.skipped,
            "failed": self.counts.failed,
            "plan": self.plan,
        }


def default_policy(settings: Settings, progress: ProgressSink | None = None) -> DispatchPolicy:
    """The production policy: default backoff, crash window from settings when configured."""
    on_unknown = getattr(settings, "delivery_on_unknown", DEFAULT_ON_UNKNOWN)
    if on_unknown not in ("resend", "fail"):
        raise DeliveryError(f"delivery_on_unknown={on_unknown!r}; use 'resend' or 'fail'")
    return DispatchPolicy(on_unknown=on_unknown, progress=progress)


def _transport(url: str | None, settings: Settings) -> Transport:
    return transport_from_url(url or settings.smtp_url)


def _deliver(
    engine: Engine,
    *,
    run_id: int,
    policy: DispatchPolicy | None,
    progress: ProgressSink | None,
    settings: Settings,
    transport_url: str | None,
    call: Callable[[Transport, DispatchPolicy], DispatchResult],
    plan: dict[str, Any] | None,
) -> RunSummary:
    """Open the transport, start the progress display, run `call`, read the counts back."""
    base = policy or default_policy(settings)
    chosen = replace(base, progress=progress) if progress is not None else base
    with _transport(transport_url, settings) as transport:
        if progress is not None:
            counts = store.run_counts(engine, run_id=run_id).by_status
            progress.start(sum(counts.get(s, 0) for s in ("planned", "rendered", "sending")))
        result = call(transport, chosen)
    return RunSummary(run_id, result, store.run_counts(engine, run_id=run_id), plan)


def run_campaign(
    engine: Engine,
    *,
    campaign: str,
    now: datetime,
    settings: Settings,
    transport_url: str | None = None,
    shard_count: int = 1,
    scheduled_for: datetime | None = None,
    policy: DispatchPolicy | None = None,
    progress: ProgressSink | None = None,
    plan_progress: Tick = silent,
) -> RunSummary:
    """Plan a run of ``campaign`` (idempotently), then deliver it shard by shard."""
    from newsletter.plan.planner import plan_run

    _transport(transport_url, settings).close()  # a wrong URL fails before planning
    planned = plan_run(
        engine,
        campaign=campaign,
        now=now,
        settings=settings,
        scheduled_for=scheduled_for,
        shard_count=shard_count,
        progress=plan_progress,
    )
    run_id = planned.run_id

    def call(transport: Transport, chosen: DispatchPolicy) -> DispatchResult:
        return dispatch_run(
            engine, run_id=run_id, transport=transport, settings=settings, now=now, policy=chosen
        )

    return _deliver(
        engine,
        run_id=run_id,
        policy=policy,
        progress=progress,
        settings=settings,
        transport_url=transport_url,
        call=call,
        plan=planned.stats,
    )


def resume_run(
    engine: Engine,
    *,
    run_id: int,
    now: datetime,
    settings: Settings,
    transport_url: str | None = None,
    policy: DispatchPolicy | None = None,
    progress: ProgressSink | None = None,
) -> RunSummary:
    """Finish an interrupted run (``sending`` messages settled by the policy's on_unknown)."""

    def call(transport: Transport, chosen: DispatchPolicy) -> DispatchResult:
        return resume(
            engine, run_id=run_id, transport=transport, settings=settings, now=now, policy=chosen
        )

    return _deliver(
        engine,
        run_id=run_id,
        policy=policy,
        progress=progress,
        settings=settings,
        transport_url=transport_url,
        call=call,
        plan=None,
    )


def retry_failed_run(
    engine: Engine,
    *,
    run_id: int,
    now: datetime,
    settings: Settings,
    transport_url: str | None = None,
    include_unknown: bool = False,
    policy: DispatchPolicy | None = None,
    progress: ProgressSink | None = None,
) -> RunSummary:
    """Re-send the run's transient failures (and unknown outcomes with include_unknown)."""

    def call(transport: Transport, chosen: DispatchPolicy) -> DispatchResult:
        return retry_failed(
            engine,
            run_id=run_id,
            transport=transport,
            settings=settings,
            now=now,
            policy=chosen,
            include_unknown=include_unknown,
        )

    if store.run_campaign_id(engine, run_id=run_id) is not None:
        counts = store.run_counts(engine, run_id=run_id).failed
        retryable = counts.get("transient", 0) + (
            sum(counts.get(r, 0) for r in ("unknown_after_crash", "unknown_after_drop"))
            if include_unknown
            else 0
        )
        if progress is not None:
            progress.start(retryable)
            progress = _NoStart(progress)
    return _deliver(
        engine,
        run_id=run_id,
        policy=policy,
        progress=progress,
        settings=settings,
        transport_url=transport_url,
        call=call,
        plan=None,
    )


@dataclass
class _NoStart:
    """A progress sink whose total was already set (retry-failed counts before requeueing)."""

    inner: ProgressSink

    def start(self, total: int) -> None:
        return None

    def __call__(self, outcome: Outcome) -> None:
        self.inner(outcome)
