"""The simulator's two doors into the real system; everything else it does is the world.

* :func:`ingest` hands the publisher's rows (new subscribers, new items, site behaviour) to the
  store's public ingest path, the one ``newsletter import csv`` and ``newsletter sync`` use
  (``store.ingest.parse_row`` then ``write_batch``): the same validation, the same upserts.
  When the events API lands, behaviour can go through it instead; only this function changes.
* :func:`send_run` runs one digest of a campaign through the real pipeline -- plan (train the
  recommender, cadence, arms, slots), render, deliver -- into a memory transport, and returns
  the messages as the recipients' inboxes received them. Today it calls what ``newsletter run``
  calls (``plan.planner.plan_run`` and ``deliver.dispatch.dispatch_run``); when the
  orchestrator (``newsletter.pipeline``) lands it is the one place to switch to it.
"""

from __future__ import annotations

import multiprocessing as mp
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from newsletter.config import Settings
from newsletter.db import Engine
from newsletter.deliver.transport import MemoryTransport, OutgoingMessage, SendStatus
from newsletter.enums import RunStatus
from newsletter.store import delivery as store
from newsletter.store import ingest as store_ingest
from newsletter.store.records import RejectedRow, RowError

if TYPE_CHECKING:
    from newsletter.plan.planner import ShardMapper, ShardPlan

SOURCE = "simulator"
BATCH = 5000


class SimulationError(RuntimeError):
    """The simulated world and the pipeline disagree (a row refused, a run not sent)."""


@dataclass(frozen=True)
class SentRun:
    """One delivered run: its id, the plan's stats and what each inbox made of its message."""

    run_id: int
    plan: dict[str, Any]
    inboxes: dict[int, Any]  # message id -> read(message)
    plan_seconds: float = 0.0  # wall time of planning (the rest of the pipeline is delivery)


Reader = Callable[[OutgoingMessage], Any]


def ingest(
    engine: Engine,
    entity: str,
    rows: Iterable[Mapping[str, Any]],
    *,
    now: datetime,
    default_timezone: str = "UTC",
) -> int:
    """Validate and write rows of `entity` (subscribers, items, interactions) like a sync.

    Returns the rows written; any refused row is a bug in the world, so it raises
    :class:`SimulationError` naming the row and the reason.
    """
    parsed: list[tuple[int, dict[str, Any]]] = []
    rejected: list[RejectedRow] = []
    for number, raw in enumerate(rows, start=1):
        try:
            parsed.append(
                (number, store_ingest.parse_row(entity, raw, default_timezone=default_timezone))
            )
        except RowError as exc:
            rejected.append(RejectedRow(f"{SOURCE} {entity}", number, str(exc)))
    written = 0
    with engine.begin() as connection:
        for start in range(0, len(parsed), BATCH):
            loaded, refused = store_ingest.write_batch(
                connection,
                entity=entity,
                rows=parsed[start : start + BATCH],
                source=f"{SOURCE} {entity}",
                now=now,
                origin=SOURCE,
            )
            written += loaded
            rejected.extend(refused)
    if rejected:
        raise SimulationError(f"the store refused {len(rejected)} rows, e.g. {rejected[0]}")
    return written


def send_run(
    engine: Engine,
    *,
    campaign: str,
    now: datetime,
    settings: Settings,
    read: Reader,
    bounce: Iterable[str] = (),
    workers: int = 1,
) -> SentRun:
    """Plan, render and deliver one run of `campaign` at `now` into memory transports.

    Each delivered message is handed to `read` (the recipient's mail client) in the process
    that delivered it, so only what the reader keeps travels back. Addresses in `bounce` are
    refused with a permanent error, as a receiving server refuses a dead mailbox, so the
    pipeline records the bounce. With `workers` > 1 the run is planned in that many shards and
    each shard is delivered in a forked process.
    """
    from newsletter.plan.planner import plan_run

    tick = time.perf_counter()
    forked = workers > 1 and "fork" in mp.get_all_start_methods()
    planned = plan_run(
        engine,
        campaign=campaign,
        now=now,
        settings=settings,
        shard_count=workers,
        compute_shards=_forked_shards(engine, workers) if forked else None,
    )
    plan_seconds = time.perf_counter() - tick
    failures: dict[str, SendStatus] = {address: "permanent" for address in bounce}
    _STATE.update(engine=engine, run_id=planned.run_id, now=now, settings=settings, read=read)
    _STATE.update(failures=failures, workers=workers)
    try:
        if not forked:
            inboxes = _deliver_shard(None)
        else:
            store.set_run_status(
                engine, run_id=planned.run_id, status=RunStatus.delivering, now=now
            )
            with mp.get_context("fork").Pool(workers) as pool:
                parts = pool.map(_child_shard, range(workers), chunksize=1)
            store.set_run_status(
                engine, run_id=planned.run_id, status=RunStatus.delivered, now=now, finished=True
            )
            inboxes = {k: v for part in parts for k, v in part.items()}
    finally:
        _STATE.clear()
    return SentRun(planned.run_id, planned.stats, inboxes, plan_seconds)


_STATE: dict[str, Any] = {}


def _forked_shards(engine: Engine, workers: int) -> ShardMapper:
    """Compute a run's shards in `workers` forked processes (each reads; the caller writes)."""

    def compute(run_id: int, shards: range) -> list[ShardPlan | None]:
        _STATE.update(engine=engine, run_id=run_id)
        try:
            with mp.get_context("fork").Pool(workers) as pool:
                return pool.map(_child_plan, shards, chunksize=1)
        finally:
            _STATE.clear()

    return compute


def _child_plan(shard: int) -> ShardPlan | None:
    from newsletter.plan.planner import compute_shard

    _STATE["engine"].dispose(close=False)
    return compute_shard(_STATE["engine"], run_id=_STATE["run_id"], shard=shard)


def _deliver_shard(shard: int | None) -> dict[int, Any]:
    """Deliver one shard (None: the whole run) to a memory transport; read every message."""
    from newsletter.deliver.dispatch import DispatchPolicy, dispatch_run, dispatch_shard

    s = _STATE
    transport = MemoryTransport(failures=s["failures"])
    policy = DispatchPolicy(honour_send_time=False)
    common = {"transport": transport, "settings": s["settings"], "now": s["now"], "policy": policy}
    if shard is None:
        dispatch_run(s["engine"], run_id=s["run_id"], **common)
    else:
        dispatch_shard(s["engine"], run_id=s["run_id"], shard=shard, **common)
    return {int(m.key): s["read"](m) for m in transport.sent}


def _child_shard(shard: int) -> dict[int, Any]:
    _STATE["engine"].dispose(close=False)
    return _deliver_shard(shard)
