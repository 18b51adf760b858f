"""Run a run's shards in parallel: forked worker processes share the fitted model.

A shard is a function of (run, shard number), so shards can run anywhere. Here the parent
prepares the run once (matrices, fitted slot source, Thompson bank), then forks ``workers``
processes that inherit it copy-on-write and plan shards independently. Writes go through a
lock, because one SQLite file accepts one writer at a time (PostgreSQL would not need it, but
the lock costs little: the write is a small part of a shard). Where ``fork`` is unavailable,
shards run one after another in this process.
"""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Callable
from datetime import datetime
from typing import Any

from newsletter.plan.planner import RunContext, plan_shard
from newsletter.store import planning as store

_STATE: dict[str, Any] = {}


def _child_init() -> None:
    """Forget the parent's pooled connections (they belong to the parent's sockets/files)."""
    _STATE["engine"].dispose(close=False)


def _child_shard(shard: int) -> tuple[int, int]:
    s = _STATE
    return shard, plan_shard(
        s["engine"],
        s["ctx"],
        shard=shard,
        shard_count=s["count"],
        now=s["now"],
        write_lock=s["lock"],
    )


def run_shards(
    engine: Any,
    ctx: RunContext,
    *,
    shard_count: int,
    now: datetime,
    workers: int = 1,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Plan every shard (in `workers` forked processes when > 1); returns new messages.

    `progress` hears how many members each step settled (per finished shard when forked).
    """
    tell = progress or (lambda _: None)
    if workers <= 1 or shard_count <= 1 or "fork" not in mp.get_all_start_methods():
        return sum(
            plan_shard(engine, ctx, shard=s, shard_count=shard_count, now=now, progress=tell)
            for s in range(shard_count)
        )
    if len(store.planned_in_run(engine, run_id=ctx.run_id, ids=ctx.members)) == len(ctx.members):
        tell(len(ctx.members))
        return 0  # a re-plan of a complete run: nothing to fit, nothing to fork
    ctx.lazy.get()  # fit once, before forking
    forked = mp.get_context("fork")
    _STATE.update(engine=engine, ctx=ctx, count=shard_count, now=now, lock=forked.Lock())
    try:
        with forked.Pool(min(workers, shard_count), initializer=_child_init) as pool:
            new = 0
            for shard, count in pool.imap_unordered(_child_shard, range(shard_count)):
                new += count
                tell(sum(1 for i in ctx.members if i % shard_count == shard))
            return new
    finally:
        _STATE.clear()
