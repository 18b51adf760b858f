"""Bulk SQL for buffered tracking: message facts for many messages, many events in one insert.

The tracking buffer (``track.buffer``) writes what it holds in one transaction per flush:
one query for the facts of every message it names, one multi-row insert, and one query for
the click/open history of those messages (for the burst rules).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, insert, select, tuple_

from newsletter.store.events import LIMITS
from newsletter.store.machine import KINDS, MessageEvent
from newsletter.tables import event_table, message_table, slot_table

M = message_table.c
SL = slot_table.c
E = event_table.c
CHUNK = 1000


def _chunks(values: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), CHUNK):
        yield values[start : start + CHUNK]


def message_facts_many(
    engine: Engine, *, message_ids: Iterable[int], slots: Iterable[tuple[int, int]]
) -> tuple[dict[int, tuple[int, datetime | None]], dict[tuple[int, int], int]]:
    """({message id: (subscriber id, sent_at)}, {(message id, position): item id})."""
    ids = sorted(set(message_ids))
    pairs = sorted(set(slots))
    facts: dict[int, tuple[int, datetime | None]] = {}
    items: dict[tuple[int, int], int] = {}
    with engine.connect() as c:
        for chunk in _chunks(ids):
            query = select(M.id, M.subscriber_id, M.sent_at).where(M.id.in_(chunk))
            facts.update({int(r.id): (int(r.subscriber_id), r.sent_at) for r in c.execute(query)})
        for chunk in _chunks(pairs):
            query = select(SL.message_id, SL.position, SL.item_id).where(
                tuple_(SL.message_id, SL.position).in_(list(chunk))
            )
            items.update({(int(r[0]), int(r[1])): int(r[2]) for r in c.execute(query)})
    return facts, items


def insert_events(engine: Engine, rows: Sequence[dict[str, Any]]) -> int:
    """Insert many event rows (Event column names as keys) in one transaction."""
    if not rows:
        return 0
    clipped = []
    for row in rows:
        out = dict(row)
        for name, width in LIMITS.items():
            if isinstance(out.get(name), str):
                out[name] = out[name][:width]
        clipped.append(out)
    with engine.begin() as c:
        c.execute(insert(event_table), clipped)
    return len(clipped)


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
            for row in c.execute(query):
                out.setdefault(int(row[0]), []).append(MessageEvent(*row[1:]))
    return out
