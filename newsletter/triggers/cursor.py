"""Read what arrived since the trigger engine's cursors, including rows that committed late.

A cursor is the highest id evaluated. Ids skipped below it -- a transaction that had taken
its id from the sequence but not committed yet, or an id never used (a rollback, an
``ON CONFLICT DO NOTHING``) -- are remembered as gaps and read again at each evaluation, so a
row that commits after a higher id was evaluated is still evaluated, once. A gap older than
``GAP_GRACE`` is forgotten (no transaction of ours stays open that long); more than
``MAX_GAPS`` are merged into wider ones (re-reading an evaluated row stores nothing new: every
state is unique per campaign, subscriber and dedupe).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from newsletter.db import Engine
from newsletter.store import trigger_cursor as store

GAP_GRACE = timedelta(minutes=30)
MAX_GAPS = 500
Gap = store.Gap
Seen = tuple[Gap, datetime]


def missing(after: int, ids: Sequence[int]) -> list[Gap]:
    """The id ranges above `after` and below the last of `ids` (ascending) that `ids` skip."""
    out, previous = [], after
    for i in ids:
        if i > previous + 1:
            out.append((previous + 1, i - 1))
        previous = max(previous, i)
    return out


def subtract(gap: Gap, found: Sequence[int]) -> list[Gap]:
    """What remains of `gap` once the ids `found` have arrived."""
    lo, hi = gap
    out = []
    for i in sorted(i for i in set(found) if lo <= i <= hi):
        if i > lo:
            out.append((lo, i - 1))
        lo = i + 1
    if lo <= hi:
        out.append((lo, hi))
    return out


def coarsen(gaps: Sequence[Seen], limit: int) -> list[Seen]:
    """At most `limit` gaps: neighbours merged pairwise (seen = the earlier) until they fit."""
    out = sorted(gaps)
    while len(out) > limit:
        pairs = [out[k : k + 2] for k in range(0, len(out), 2)]
        out = [((p[0][0][0], p[-1][0][1]), min(s for _, s in p)) for p in pairs]
    return out


@dataclass
class Batch:
    """The rows of one entity to evaluate (late ones first) and how the cursor moves after."""

    entity: str
    rows: list[tuple[Any, ...]]
    start: int
    last: int
    late: int = 0
    closed: list[Gap] = field(default_factory=list)
    opened: list[Seen] = field(default_factory=list)


def read(engine: Engine, *, entity: str, limit: int, now: datetime) -> Batch:
    """The rows of `entity` that committed late into an open gap, then those after the cursor."""
    start = store.cursor(engine, entity=entity)
    remembered = store.open_gaps(engine, entity=entity)
    live = [(g, seen) for g, seen in remembered if seen >= now - GAP_GRACE]
    late = store.rows_in(engine, entity=entity, gaps=[g for g, _ in live]) if live else []
    fresh = store.rows_after(engine, entity=entity, after=start, limit=limit)
    last = int(fresh[-1][0]) if fresh else start
    found = [int(r[0]) for r in late]
    kept: list[Seen] = []
    for gap, seen in live:
        kept.extend((piece, seen) for piece in subtract(gap, found))
    kept.extend((gap, now) for gap in missing(start, [int(r[0]) for r in fresh]))
    batch = Batch(entity, late + fresh, start, last, len(late))
    unchanged = set(remembered) & set(kept)
    if len(kept) > MAX_GAPS:
        kept, unchanged = coarsen(kept, MAX_GAPS), set()
    batch.closed = [g for g, seen in remembered if (g, seen) not in unchanged]
    batch.opened = [s for s in kept if s not in unchanged]
    return batch


def commit(engine: Engine, batch: Batch, *, now: datetime) -> None:
    """Record that `batch` was evaluated: its gaps, then the cursor."""
    if batch.closed or batch.opened:
        store.replace_gaps(
            engine, entity=batch.entity, closed=batch.closed, opened=batch.opened, now=now
        )
    store.move_cursor(
        engine, entity=batch.entity, to=batch.last, rows=len(batch.rows) - batch.late, now=now
    )


def start_here(engine: Engine, *, entity: str, now: datetime) -> None:
    """Start evaluating `entity` from what is stored now (history before it fires nothing)."""
    to = store.max_id(engine, entity=entity)
    store.move_cursor(engine, entity=entity, to=to, rows=0, now=now)
