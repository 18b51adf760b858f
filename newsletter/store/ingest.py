"""Write validated records: upsert subscribers and items by key, add interactions once.

Subscribers and items go through `newsletter.store.upsert`, which writes only the columns a
row carried and never undoes what the subscriber said (field ownership).

Each function works on one batch inside the caller's transaction, so a batch that fails at
the database rolls back whole and leaves nothing half-written. Rows that the database would
refuse for a reason a user can fix (an e-mail owned by another subscriber, an interaction
naming an unknown item) come back as `RejectedRow`s instead of failing the batch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from newsletter.store.dialect import dialect_insert
from newsletter.store.records import (
    RejectedRow,
    parse_interaction,
    parse_item,
    parse_subscriber,
)
from newsletter.store.storable import check_storable
from newsletter.store.upsert import upsert_items, upsert_subscribers
from newsletter.tables import interaction_table, item_table, subscriber_table

Numbered = tuple[int, dict[str, Any]]  # (line number in its source, record)

SUBSCRIBER = subscriber_table
ITEM = item_table
INTERACTION = interaction_table


def _key_map(connection: Connection, table: Any, keys: set[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    key_list = sorted(keys)
    for start in range(0, len(key_list), 5000):
        chunk = key_list[start : start + 5000]
        found.update(
            connection.execute(
                select(table.c.external_key, table.c.id).where(table.c.external_key.in_(chunk))
            ).all()
        )
    return found


def insert_interactions(
    connection: Connection, *, rows: Sequence[Numbered], source: str, origin: str = "import"
) -> tuple[int, list[RejectedRow]]:
    """Add interactions (an identical row already stored is skipped, never doubled)."""
    subscribers = _key_map(connection, SUBSCRIBER, {r["subscriber_key"] for _, r in rows})
    items = _key_map(connection, ITEM, {r["item_key"] for _, r in rows})
    accepted, rejected = [], []
    for line, record in rows:
        subscriber_id = subscribers.get(record["subscriber_key"])
        item_id = items.get(record["item_key"])
        if subscriber_id is None:
            rejected.append(
                RejectedRow(source, line, f"unknown subscriber_key {record['subscriber_key']!r}")
            )
        elif item_id is None:
            rejected.append(RejectedRow(source, line, f"unknown item_key {record['item_key']!r}"))
        else:
            accepted.append(
                {
                    "subscriber_id": subscriber_id,
                    "item_id": item_id,
                    "kind": record["kind"],
                    "occurred_at": record["occurred_at"],
                    "value": record["value"],
                    "source": origin,
                    "idempotency_key": record.get("idempotency_key"),
                }
            )
    if accepted:
        statement = dialect_insert(connection, table=INTERACTION).on_conflict_do_nothing()
        connection.execute(statement, accepted)
    return len(accepted), rejected


def parse_row(entity: str, raw: Mapping[str, Any], *, default_timezone: str) -> dict[str, Any]:
    """Validate one raw row of `entity` (subscribers, items, interactions), or RowError;
    the record is also one the database will store (`storable.check_storable`)."""
    if entity == "subscribers":
        record = parse_subscriber(raw, default_timezone=default_timezone)
    elif entity == "items":
        record = parse_item(raw)
    else:
        record = parse_interaction(raw)
    check_storable(entity, record)
    return record


def write_batch(
    connection: Connection,
    *,
    entity: str,
    rows: Sequence[Numbered],
    source: str,
    now: datetime,
    origin: str,
) -> tuple[int, list[RejectedRow]]:
    """Write one validated batch of `entity` rows; returns (rows written, rejections)."""
    if entity == "subscribers":
        return upsert_subscribers(connection, rows=rows, source=source, now=now)
    if entity == "items":
        return upsert_items(connection, rows=rows, now=now)
    return insert_interactions(connection, rows=rows, source=source, origin=origin)


def record_interactions(
    engine: Any, *, events: Sequence[Mapping[str, Any]], default_timezone: str
) -> int:
    """Validate and store interaction rows keyed by external keys (the events API's input);
    a bad row raises ValueError naming its position and the problem."""
    from newsletter.store.records import RowError

    rows: list[Numbered] = []
    for n, raw in enumerate(events, start=1):
        try:
            rows.append((n, parse_row("interactions", raw, default_timezone=default_timezone)))
        except RowError as exc:
            raise ValueError(f"event {n}: {exc}") from exc
    with engine.begin() as c:  # a refused row rolls the whole batch back
        written, rejected = insert_interactions(c, rows=rows, source="events", origin="events")
        if rejected:
            raise ValueError(f"event {rejected[0].line}: {rejected[0].reason}")
    return written
