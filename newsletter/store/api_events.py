"""Store a batch of behaviour events from the events API: placeholders, idempotency, one write.

Rows arrive validated (``ingest.parse_row``) and are written by ``ingest.write_batch``, the
path CSV import and sync use. Before that, in the same transaction: a row whose idempotency
key is already stored (or repeated earlier in the batch) is a ``duplicate`` and is skipped;
with ``unknown="placeholder"``, subscriber and item keys that do not exist yet get placeholder
rows (a subscriber with status ``placeholder`` and an ``.invalid`` address, an inactive item
without a URL) that are never mailed or recommended until an upsert fills them in.

The database has the last word: ``idempotency_key`` is unique, so two requests racing with the
same key still store one row (the loser is then reported ``stored`` although it was ignored).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, select

from newsletter.models import SubscriberStatus
from newsletter.store.dialect import dialect_insert
from newsletter.store.ingest import Numbered, write_batch
from newsletter.tables import interaction_table, item_table, subscriber_table

SUBSCRIBER = subscriber_table
ITEM = item_table
INTERACTION = interaction_table
PLACEHOLDER_DOMAIN = "placeholder.invalid"
CHUNK = 1000


@dataclass(frozen=True)
class RowOutcome:
    """What happened to row ``index`` of a batch: stored, duplicate or rejected (with why)."""

    index: int
    status: str
    reason: str | None = None


def placeholder_email(key: str) -> str:
    """The never-deliverable address of a placeholder subscriber (RFC 2606 ``.invalid``)."""
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]
    return f"placeholder-{digest}@{PLACEHOLDER_DOMAIN}"


def _insert_ignore(c: Connection, table: Any, rows: list[dict[str, Any]]) -> None:
    c.execute(dialect_insert(c, table=table).on_conflict_do_nothing(), rows)


def _missing(c: Connection, table: Any, keys: set[str]) -> list[str]:
    found: set[str] = set()
    ordered = sorted(keys)
    for start in range(0, len(ordered), CHUNK):
        chunk = ordered[start : start + CHUNK]
        query = select(table.c.external_key).where(table.c.external_key.in_(chunk))
        found.update(c.execute(query).scalars())
    return [k for k in ordered if k not in found]


def add_placeholders(c: Connection, *, rows: Sequence[Numbered], now: datetime) -> int:
    """Create placeholder subscribers and items for the keys ``rows`` name that do not exist."""
    people = _missing(c, SUBSCRIBER, {r["subscriber_key"] for _, r in rows})
    things = _missing(c, ITEM, {r["item_key"] for _, r in rows})
    if people:
        placeholder = SubscriberStatus.placeholder
        new = [
            {
                "external_key": k,
                "email": placeholder_email(k),
                "status": placeholder,
                "timezone": "UTC",
                "frequency": "weekly",
                "topics": [],
                "attributes": {},
                "created_at": now,
                "updated_at": now,
            }
            for k in people
        ]
        _insert_ignore(c, SUBSCRIBER, new)
    if things:
        new = [
            {
                "external_key": k,
                "title": k[:500],
                "url": "",
                "summary": "",
                "topics": [],
                "attributes": {},
                "active": False,
                "updated_at": now,
            }
            for k in things
        ]
        _insert_ignore(c, ITEM, new)
    return len(people) + len(things)


def _stored_keys(c: Connection, keys: set[str]) -> set[str]:
    found: set[str] = set()
    ordered = sorted(keys)
    column = INTERACTION.c.idempotency_key
    for start in range(0, len(ordered), CHUNK):
        query = select(column).where(column.in_(ordered[start : start + CHUNK]))
        found.update(c.execute(query).scalars())
    return found


def _split_duplicates(
    c: Connection, rows: Sequence[Numbered]
) -> tuple[list[Numbered], list[RowOutcome]]:
    """Rows to write, and the ``duplicate`` outcomes of rows whose key was already seen."""
    keys = {r["idempotency_key"] for _, r in rows if r.get("idempotency_key")}
    seen = _stored_keys(c, keys) if keys else set()
    fresh, duplicates = [], []
    for index, record in rows:
        key = record.get("idempotency_key")
        if key and key in seen:
            duplicates.append(RowOutcome(index, "duplicate", f"idempotency_key {key!r} seen"))
            continue
        if key:
            seen.add(key)
        fresh.append((index, record))
    return fresh, duplicates


def store_events(
    engine: Engine, *, rows: Sequence[Numbered], unknown: str, now: datetime
) -> tuple[list[RowOutcome], list[Numbered]]:
    """Store validated interaction rows in one transaction; (outcomes, rows stored)."""
    with engine.begin() as c:
        if unknown == "placeholder" and rows:
            add_placeholders(c, rows=rows, now=now)
        fresh, outcomes = _split_duplicates(c, rows)
        _, rejected = write_batch(
            c, entity="interactions", rows=fresh, source="api", now=now, origin="api"
        )
    refused = {r.line: r.reason for r in rejected}
    outcomes += [RowOutcome(i, "rejected", refused[i]) for i, _ in fresh if i in refused]
    stored = [(i, r) for i, r in fresh if i not in refused]
    outcomes += [RowOutcome(i, "stored") for i, _ in stored]
    return sorted(outcomes, key=lambda o: o.index), stored
