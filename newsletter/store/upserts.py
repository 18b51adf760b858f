"""One subscriber or item upserted by key (the events API), and a subscriber's erasure.

An upsert goes through the same write path as CSV import and sync (``ingest.parse_row`` and
``ingest.write_batch``), so every field-ownership rule of that path holds for the API too. A
field the request omits is never reset: the stored value is carried into the row first, then
the request's fields replace only what they name. A placeholder row (created by the events API
for an unknown key) carries nothing over: the first real upsert fills it as if it were new.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, select

from newsletter.models import Item, Subscriber, SubscriberStatus
from newsletter.store.ingest import parse_row, write_batch
from newsletter.store.records import RowError

S = Subscriber.__table__.c  # type: ignore[attr-defined]
I = Item.__table__.c  # type: ignore[attr-defined]  # noqa: E741
SUBSCRIBER_FIELDS = ("email", "name", "status", "timezone", "locale", "frequency", "topics")
ITEM_FIELDS = (
    "title",
    "url",
    "summary",
    "image_url",
    "topics",
    "published_at",
    "expires_at",
    "active",
)


@dataclass(frozen=True)
class Upserted:
    """The outcome of one upsert: the row's id and whether it was new."""

    id: int
    created: bool


def _flatten(values: Mapping[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    """A stored row as the raw columns ``parse_row`` reads (attributes as extra columns)."""
    raw = {name: values[name] for name in names if values.get(name) is not None}
    raw.update(values.get("attributes") or {})
    return raw


def _merged(
    current: dict[str, Any] | None, fields: Mapping[str, Any], *, merge_attributes: bool = False
) -> dict[str, Any]:
    """The stored raw row overlaid with the request's fields; given attributes replace the
    stored ones as a whole, or are merged into them with ``merge_attributes``."""
    raw = dict(current or {})
    if "attributes" in fields and current is not None and not merge_attributes:
        known = set(SUBSCRIBER_FIELDS) | set(ITEM_FIELDS) | {"subscriber_key", "item_key"}
        raw = {k: v for k, v in raw.items() if k in known}
    for name, value in fields.items():
        if name == "attributes":
            raw.update(value or {})
        else:
            raw[name] = value
    return raw


def _subscriber_raw(c: Connection, key: str) -> dict[str, Any] | None:
    row = c.execute(select(Subscriber.__table__).where(S.external_key == key)).mappings().first()  # type: ignore[attr-defined]
    if row is None or row["status"] == SubscriberStatus.placeholder:
        return None
    return _flatten(dict(row), SUBSCRIBER_FIELDS)


def _item_raw(c: Connection, key: str) -> dict[str, Any] | None:
    row = c.execute(select(Item.__table__).where(I.external_key == key)).mappings().first()  # type: ignore[attr-defined]
    if row is None or not row["url"]:  # a placeholder item has no URL yet
        return None
    raw = _flatten(dict(row), ITEM_FIELDS)
    raw["active"] = "true" if row["active"] else "false"
    return raw


def _write_one(
    c: Connection, entity: str, raw: dict[str, Any], *, default_timezone: str, now: datetime
) -> None:
    record = parse_row(entity, raw, default_timezone=default_timezone)
    _, rejected = write_batch(c, entity, [(0, record)], source="api", now=now, origin="api")
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
    table = Subscriber.__table__  # type: ignore[attr-defined]
    with engine.begin() as c:
        existed = _id_of(c, table, key)
        current = _subscriber_raw(c, key)
        raw = _merged(current, fields, merge_attributes=merge_attributes)
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
    table = Item.__table__  # type: ignore[attr-defined]
    with engine.begin() as c:
        existed = _id_of(c, table, key)
        current = _item_raw(c, key)
        raw = _merged(current, fields) | {"item_key": key}
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
