"""Deliver one shard of a run anywhere: the pass's time and policy are read from the database.

    start_pass(engine, *, run_id, now, policy)        # the coordinator, once per pass
    deliver_shard(engine, *, run_id, shard, settings, transport)   # any worker, any shard

A delivery pass is stored with the run (artifact ``delivery``: its ``now`` and the
:class:`~newsletter.deliver.policy.DeliveryPolicy` as JSON), so a shard task needs only the
database, the run id and the shard number -- plus what the worker process is configured with
(its settings: secret key, sender, base URL; and a transport). Running a shard twice sends
nothing twice: every claim is a conditional UPDATE (see ``dispatch``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from newsletter.config import Settings
from newsletter.db import Engine
from newsletter.deliver.dispatch import DeliveryError, DispatchResult, dispatch_shard
from newsletter.deliver.policy import DeliveryPolicy
from newsletter.deliver.transport import Transport
from newsletter.models import ArtifactKind, RunStatus
from newsletter.progress import ProgressSink, StartedProgress
from newsletter.store import artifacts
from newsletter.store import delivery as store
from newsletter.store.delivery import RunCounts

__all__ = [
    "DeliveryPass",
    "ProgressSink",
    "RunSummary",
    "StartedProgress",
    "current_pass",
    "deliver_shard",
    "shard_progress",
    "start_pass",
]
PASS_FORMAT = 1


def shard_progress(progress: ProgressSink) -> Callable[[Any, DispatchResult], None]:
    """For shards delivered in other processes: move a display that can ``advance(n)`` on
    by each finished shard's outcomes (the calling process sees no single message)."""
    advance = getattr(progress, "advance", None)

    def done(_task: Any, shard: DispatchResult) -> None:
        if advance is not None:
            advance(shard.sent + shard.failed + shard.skipped)

    return done


@dataclass(frozen=True)
class DeliveryPass:
    """One delivery pass over a run: the time it delivers as of, and its policy."""

    now: datetime
    policy: DeliveryPolicy

    def to_json(self) -> bytes:
        return json.dumps({"now": self.now.isoformat(), "policy": self.policy.as_dict()}).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> DeliveryPass:
        data = json.loads(raw)
        return cls(datetime.fromisoformat(data["now"]), DeliveryPolicy.from_dict(data["policy"]))


def start_pass(engine: Engine, *, run_id: int, now: datetime, policy: DeliveryPolicy) -> bool:
    """Store the pass every shard of this run delivers by, and mark the run ``delivering``.

    False when a person held or cancelled the run: it keeps that status and is not delivered.
    """
    artifacts.save_artifact(
        engine,
        run_id=run_id,
        kind=ArtifactKind.delivery,
        version=PASS_FORMAT,
        content=DeliveryPass(now, policy).to_json(),
        now=now,
        replace=True,
    )
    return store.set_run_status(engine, run_id=run_id, status=RunStatus.delivering, now=now)


def current_pass(engine: Engine, *, run_id: int) -> DeliveryPass:
    """The run's current delivery pass; a clear error when none was started."""
    found = artifacts.load_artifact(engine, run_id=run_id, kind=ArtifactKind.delivery)
    if found is None:
        raise DeliveryError(
            f"run {run_id} has no delivery pass: deliver it with `newsletter run resume {run_id}`"
        )
    return DeliveryPass.from_json(found.content)


def deliver_shard(
    engine: Engine,
    *,
    run_id: int,
    shard: int,
    settings: Settings,
    transport: Transport,
    progress: ProgressSink | None = None,
) -> DispatchResult:
    """Deliver one shard of a run by its current pass (raises DeliveryPaused like dispatch)."""
    delivery = current_pass(engine, run_id=run_id)
    return dispatch_shard(
        engine,
        run_id=run_id,
        shard=shard,
        transport=transport,
        settings=settings,
        now=delivery.now,
        policy=delivery.policy.runtime(progress=progress),
    )


@dataclass
class RunSummary:
    """One delivery pass over a run: what this pass did, and the run's counts in the database."""

    run_id: int
    result: DispatchResult
    counts: RunCounts
    plan: dict[str, Any] | None = None
    status: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """Plain data for JSON output."""
        r = self.result
        return {
            "run_id": self.run_id,
            "status": self.status,
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
