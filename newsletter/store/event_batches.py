"""Bulk SQL for buffered tracking: message facts for many messages, many events in one insert.

The tracking buffer (``track.buffer``) writes what it holds in one transaction per flush:
two queries for the facts of the messages it names that it has not cached yet, one bulk
insert (COPY on PostgreSQL) that hands back the new rows' ids, one count of each named
message's clicks, opens and honeypot hits, and the history of only those messages whose count
says the buffer's cached history is incomplete (for the burst rules).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, func, insert, select

from newsletter.store.events import LIMITS
from newsletter.store.machine import KINDS, MessageEvent
from newsletter.tables import event_table, message_table, slot_table

M = message_table.c
SL = slot_table.c
E = event_table.c
CHUNK = 1000
COLUMNS = (
    "message_id",
    "subscriber_id",
    "slot_position",
    "item_id",
    "kind",
    "occurred_at",
    "is_machine",
    "machine_reason",
    "user_agent",
    "ip",
    "url",
    "external_id",
)
COPY_EVENTS = f"COPY event (id, {', '.join(COLUMNS)}) FROM STDIN"


def _chunks(values: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), CHUNK):
        yield values[start : start + CHUNK]


@dataclass(frozen=True, slots=True)
class SentFacts:
    """What an event row needs from its message: the subscriber, the send time, the slot items."""

    subscriber_id: int
    sent_at: datetime | None
    items: dict[int, int]  # slot position -> item id


def message_facts_many(engine: Engine, *, message_ids: Iterable[int]) -> dict[int, SentFacts]:
    """{message id: SentFacts} for the messages that exist (each with all of its slots)."""
    ids = sorted(set(message_ids))
    facts: dict[int, SentFacts] = {}
    with engine.connect() as c:
        for chunk in _chunks(ids):
            query = select(M.id, M.subscriber_id, M.sent_at).where(M.id.in_(chunk))
            facts.update({int(r[0]): SentFacts(int(r[1]), r[2], {}) for r in c.execute(query)})
            query = select(SL.message_id, SL.position, SL.item_id).where(SL.message_id.in_(chunk))
            for message_id, position, item_id in c.execute(query):
                if message_id in facts and item_id is not None:
                    facts[message_id].items[int(position)] = int(item_id)
    return facts


def insert_events(engine: Engine, *, rows: Sequence[dict[str, Any]]) -> list[int]:
    """Insert many event rows (``COLUMNS`` as keys) in one transaction; returns their ids in
    row order. ``COPY`` on PostgreSQL (a third of the CPU of a multi-row INSERT) with ids taken
    from the table's sequence first, a multi-row ``INSERT ... RETURNING`` elsewhere."""
    if not rows:
        return []
    clipped = []
    for row in rows:
        out = dict(row)
        for name, width in LIMITS.items():
            if isinstance(out.get(name), str):
                out[name] = out[name][:width]
        if out["occurred_at"].utcoffset() is None:
            raise ValueError(f"event occurred_at {out['occurred_at']} has no time zone")
        clipped.append(out)
    with engine.begin() as c:
        if c.dialect.name == "postgresql":
            return _copy_events(c, clipped)
        returning = insert(event_table).returning(E.id, sort_by_parameter_order=True)
        return [int(i) for i in c.execute(returning, clipped).scalars()]


def _copy_events(c: Connection, rows: Sequence[dict[str, Any]]) -> list[int]:
    """``COPY event (id, COLUMNS) FROM STDIN`` through the psycopg connection of `c`, with ids
    drawn from the id column's sequence in one query (what ``INSERT`` would have drawn)."""
    sequence = func.pg_get_serial_sequence("event", "id")
    draw = select(func.nextval(sequence)).select_from(func.generate_series(1, len(rows)))
    ids = [int(i) for i in c.execute(draw).scalars()]
    raw: Any = c.connection.driver_connection
    with raw.cursor() as cursor, cursor.copy(COPY_EVENTS) as copy:
        for event_id, row in zip(ids, rows, strict=True):
            copy.write_row((event_id, *(row[name] for name in COLUMNS)))
    return ids


def history_counts(engine: Engine, *, message_ids: Iterable[int]) -> dict[int, int]:
    """{message id: how many clicks, opens and honeypot hits it has} (messages with none are
    left out): one indexed aggregate, far cheaper than reading the rows."""
    out: dict[int, int] = {}
    with engine.connect() as c:
        for chunk in _chunks(sorted(set(message_ids))):
            query = (
                select(E.message_id, func.count())
                .where(E.message_id.in_(chunk), E.kind.in_(KINDS))
                .group_by(E.message_id)
            )
            out.update({int(m): int(n) for m, n in c.execute(query)})
    return out


def events_of(engine: Engine, *, message_ids: Iterable[int]) -> dict[int, list[MessageEvent]]:
    """The clicks, opens and honeypot hits of each message, oldest first."""
    out: dict[int, list[MessageEvent]] = {}
    with engine.connect() as c:
        for chunk in _chunks(sorted(set(message_ids))):
            query = (
                select(
                    E.message_id, E.id, E.kind, E.occurred_at, E.slot_position, E.url, E.is_machine
                )
                .where(E.message_id.in_(chunk), E.kind.in_(KINDS))
                .order_by(E.occurred_at, E.id)
            )
            for row in c.execute(query).all():  # fetchall: far cheaper than row by row
                out.setdefault(int(row[0]), []).append(MessageEvent(*row[1:]))
    return out
