"""Progress queries: the newest runs, and a run's messages counted by shard and status."""

from __future__ import annotations

from sqlalchemy import Engine, func, select

from newsletter.store.runs import RunRow
from newsletter.tables import campaign_table, message_table, run_table

R = run_table.c
M = message_table.c
C = campaign_table.c


def recent_runs(engine: Engine, *, limit: int = 20) -> list[RunRow]:
    """The newest `limit` runs (highest id first) with their campaign's name."""
    with engine.connect() as c:
        rows = c.execute(
            select(R.id, R.campaign_id, C.name, R.scheduled_for, R.status)
            .join(campaign_table, C.id == R.campaign_id)
            .order_by(R.id.desc())
            .limit(limit)
        ).all()
    return [RunRow(int(r[0]), int(r[1]), str(r[2]), r[3], str(r[4])) for r in rows]


def shard_status_counts(engine: Engine, *, run_id: int) -> dict[int, dict[str, int]]:
    """``{shard: {status: messages}}`` for one run (shards without messages are absent)."""
    out: dict[int, dict[str, int]] = {}
    with engine.connect() as c:
        rows = c.execute(
            select(M.shard, M.status, func.count())
            .where(M.run_id == run_id)
            .group_by(M.shard, M.status)
        ).all()
    for shard, status, n in rows:
        out.setdefault(int(shard), {})[str(status)] = int(n)
    return out
