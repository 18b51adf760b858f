"""One subscriber or item upserted by key (the events API), and a subscriber's erasure.

An upsert goes through the same write path as CSV import and sync (``ingest.parse_row`` and
``ingest.write_batch``), so every field-ownership rule of that path (``store.upsert``) holds for
the API too: a field the request omits is not in the row, so it is never reset. Only what the
parser needs of a stored row is carried in (the email; an item's title and url). Attributes the
request gives replace the stored ones as a whole (each stored key the request lacks is sent as
blank, which removes it), or are merged into them with ``merge_attributes``. A placeholder row
(created by the events API for an unknown key) counts as new: the first real upsert fills it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, select

from newsletter.models import SubscriberStatus
from newsletter.store.ingest import parse_row, write_batch
from newsletter.store.records import RowError
from newsletter.tables import item_table, subscriber_table

S = subscriber_table.c
I = item_table.c  # noqa: E741


@dataclass(frozen=True)
class Upserted:
    """The outcome of one upsert: the row's id and whether it was new."""

    id: int
    created: bool


def _raw(
    stored: Mapping[str, Any] | None,
    carried: tuple[str, ...],
    fields: Mapping[str, Any],
    *,
    merge_attributes: bool,
) -> dict[str, Any]:
    """The raw row ``parse_row`` reads: the request's fields (attributes as extra columns),
    plus the ``carried`` columns of the stored row the request does not name."""
    raw = {n: stored[n] for n in carried if stored is not None and n not in fields}
    raw.update({name: value for name, value in fields.items() if name != "attributes"})
    if "attributes" in fields:
        given = dict(fields["attributes"] or {})
        if stored is not None and not merge_attributes:
            raw.update({k: None for k in stored["attributes"] or {} if k not in given})
        raw.update(given)
    return raw


def _subscriber_row(c: Connection, key: str) -> dict[str, Any] | None:
    query = select(S.email, S.status, S.attributes).where(S.external_key == key)
    row = c.execute(query).mappings().first()
    if row is None or row["status"] == SubscriberStatus.placeholder:
        return None
    return dict(row)


def _item_row(c: Connection, key: str) -> dict[str, Any] | None:
    query = select(I.title, I.url, I.attributes).where(I.external_key == key)
    row = c.execute(query).mappings().first()
    if row is None or not row["url"]:  # a placeholder item has no URL yet
        return None
    return dict(row)


def _write_one(
    c: Connection, entity: str, raw: dict[str, Any], *, default_timezone: str, now: datetime
) -> None:
    record = parse_row(entity, raw, default_timezone=default_timezone)
    _, rejected = write_batch(
        c, entity=entity, rows=[(0, record)], source="api", now=now, origin="api"
    )
    if rejected:
        raise RowError(rejected[0].reason)


def _id_of(c: Connection, table: Any, key: str) -> int | None:
    found = c.execute(select(table.c.id).where(table.c.external_key == key)).scalar()
    return None if found is None else int(found)


def upsert_subscriber(
    engine: Engine,
    *,
    key: str,
    fields: Mapping[str, Any],
    default_timezone: str,
    now: datetime,
    merge_attributes: bool = False,
) -> Upserted:
    """Insert or update the subscriber ``key`` with ``fields`` (omitted ones kept), or RowError."""
    table = subscriber_table
    with engine.begin() as c:
        existed = _id_of(c, table, key)
        current = _subscriber_row(c, key)
        raw = _raw(current, ("email",), fields, merge_attributes=merge_attributes)
        raw["subscriber_key"] = key
        if current is None and "status" not in fields:
            raw["status"] = SubscriberStatus.active  # a new (or placeholder) row starts active
        if "email" not in raw:
            raise RowError(f"subscriber {key!r} is new: the request must give its email")
        _write_one(c, "subscribers", raw, default_timezone=default_timezone, now=now)
        found = _id_of(c, table, key)
    assert found is not None
    return Upserted(found, existed is None)


def upsert_item(engine: Engine, *, key: str, fields: Mapping[str, Any], now: datetime) -> Upserted:
    """Insert or update the item ``key`` with ``fields`` (omitted ones kept), or RowError."""
    table = item_table
    with engine.begin() as c:
        existed = _id_of(c, table, key)
        current = _item_row(c, key)
        raw = _raw(current, ("title", "url"), fields, merge_attributes=False) | {"item_key": key}
        missing = [name for name in ("title", "url") if name not in raw]
        if missing:
            needed = " and ".join(missing)
            raise RowError(f"item {key!r} is new: the request must give its {needed}")
        if isinstance(raw.get("active"), bool):
            raw["active"] = "true" if raw["active"] else "false"
        _write_one(c, "items", raw, default_timezone="UTC", now=now)
        found = _id_of(c, table, key)
    assert found is not None
    return Upserted(found, existed is None)
