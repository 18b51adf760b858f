"""The SQL of the trigger engine's cursors: new rows since an id, late rows in open id gaps.

Evaluation reads what arrived since its cursors (``sync_state`` rows of source ``triggers``:
the last id evaluated per entity -- ``interaction``, ``subscriber``, ``event``), so every
ingest path feeds the triggers without calling them. On PostgreSQL ids come from a sequence
and transactions commit out of order: a row with a smaller id than one already read may
become visible later. So the ids missing below the cursor when it moved are remembered as
open *gaps* (rows of source ``triggers-gap:LO:HI``, watermark = when the gap was seen) and
read again at every evaluation until their rows arrive or the gap is older than the grace.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, delete, func, or_, select, update

from newsletter.store.dialect import dialect_insert
from newsletter.tables import event_table, interaction_table, subscriber_table, sync_state_table

I = interaction_table.c  # noqa: E741
S = subscriber_table.c
E = event_table.c
SYNC = sync_state_table
CURSOR_SOURCE = "triggers"
GAP_SOURCE = "triggers-gap:"
GAP_CHUNK = 200
# The columns read per entity; the first is always the id.
COLUMNS: dict[str, tuple[Any, ...]] = {
    "interaction": (I.id, I.subscriber_id, I.item_id, I.kind, I.occurred_at),
    "subscriber": (S.id, S.created_at, S.topics, S.status),
    "event": (E.id, E.subscriber_id, E.item_id, E.kind, E.occurred_at, E.is_machine),
}
Gap = tuple[int, int]  # lowest and highest missing id, inclusive


def _id(entity: str) -> Any:
    if entity not in COLUMNS:
        raise ValueError(f"unknown trigger cursor entity {entity!r}: expected one of {COLUMNS}")
    return COLUMNS[entity][0]


def cursor(engine: Engine, *, entity: str) -> int:
    """The last id of `entity` the trigger engine evaluated (0 before the first pass)."""
    with engine.connect() as c:
        found = c.execute(
            select(SYNC.c.watermark).where(SYNC.c.source == CURSOR_SOURCE, SYNC.c.entity == entity)
        ).scalar()
    return int(found) if found else 0


def max_id(engine: Engine, *, entity: str) -> int:
    """The largest id of `entity` stored now (where a fresh engine starts its cursor)."""
    with engine.connect() as c:
        return int(c.execute(select(func.coalesce(func.max(_id(entity)), 0))).scalar_one())


def move_cursor(engine: Engine, *, entity: str, to: int, rows: int, now: datetime) -> None:
    """Advance the cursor of `entity` (never backwards: a slower process cannot rewind it)."""
    with engine.begin() as c:
        statement = dialect_insert(c, table=SYNC).values(
            source=CURSOR_SOURCE, entity=entity, watermark=str(to), rows_loaded=rows, updated_at=now
        )
        c.execute(statement.on_conflict_do_nothing(index_elements=["source", "entity"]))
        where = (SYNC.c.source == CURSOR_SOURCE, SYNC.c.entity == entity)
        current = c.execute(select(SYNC.c.watermark).where(*where)).scalar()
        if current is None or int(current) < to:
            c.execute(
                update(SYNC)
                .where(*where)
                .values(watermark=str(to), rows_loaded=SYNC.c.rows_loaded + rows, updated_at=now)
            )


def rows_after(engine: Engine, *, entity: str, after: int, limit: int) -> list[tuple[Any, ...]]:
    """The rows of `entity` with id > `after`, lowest id first, at most `limit`."""
    column = _id(entity)
    with engine.connect() as c:
        query = select(*COLUMNS[entity]).where(column > after).order_by(column).limit(limit)
        return [tuple(r) for r in c.execute(query)]


def rows_in(engine: Engine, *, entity: str, gaps: Sequence[Gap]) -> list[tuple[Any, ...]]:
    """The rows of `entity` whose id lies in one of `gaps` (rows that committed late)."""
    column = _id(entity)
    out: list[tuple[Any, ...]] = []
    with engine.connect() as c:
        for at in range(0, len(gaps), GAP_CHUNK):
            ranges = [column.between(lo, hi) for lo, hi in gaps[at : at + GAP_CHUNK]]
            query = select(*COLUMNS[entity]).where(or_(*ranges)).order_by(column)
            out.extend(tuple(r) for r in c.execute(query))
    return out


def open_gaps(engine: Engine, *, entity: str) -> list[tuple[Gap, datetime]]:
    """The remembered id gaps of `entity` and when each was first seen, lowest first."""
    with engine.connect() as c:
        rows = c.execute(
            select(SYNC.c.source, SYNC.c.watermark).where(
                SYNC.c.source.startswith(GAP_SOURCE), SYNC.c.entity == entity
            )
        ).all()
    found = []
    for source, seen in rows:
        lo, hi = source.removeprefix(GAP_SOURCE).split(":")
        found.append(((int(lo), int(hi)), datetime.fromisoformat(seen)))
    return sorted(found)


def replace_gaps(
    engine: Engine,
    *,
    entity: str,
    closed: Sequence[Gap],
    opened: Sequence[tuple[Gap, datetime]],
    now: datetime,
) -> None:
    """Forget the gaps `closed` and remember `opened` (gap, first seen), in one transaction."""
    with engine.begin() as c:
        for at in range(0, len(closed), GAP_CHUNK):
            names = [f"{GAP_SOURCE}{lo}:{hi}" for lo, hi in closed[at : at + GAP_CHUNK]]
            c.execute(delete(SYNC).where(SYNC.c.entity == entity, SYNC.c.source.in_(names)))
        if opened:
            rows = [
                {
                    "source": f"{GAP_SOURCE}{lo}:{hi}",
                    "entity": entity,
                    "watermark": seen.isoformat(),
                    "rows_loaded": 0,
                    "updated_at": now,
                }
                for (lo, hi), seen in opened
            ]
            statement = dialect_insert(c, table=SYNC).on_conflict_do_nothing(
                index_elements=["source", "entity"]
            )
            c.execute(statement, rows)
