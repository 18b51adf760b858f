"""Would the database store this record? Checked per row, before any batch is written.

PostgreSQL refuses a NUL character in text and JSON, and a string longer than its column
(``VARCHAR(n)``); SQLite stores either silently. One such value in a batch of 5,000 used to
fail the whole batch on PostgreSQL, so `check_storable` refuses the row instead, naming the
field, on both databases alike (a row is accepted or refused the same everywhere).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, cast

from sqlalchemy import String

from newsletter.store.records import RowError
from newsletter.tables import interaction_table, item_table, item_topic_table, subscriber_table

KEY_CHARS = 200  # subscriber and item keys (external_key)
TOPIC_CHARS = int(cast(String, item_topic_table.c.topic.type).length or 0)
TABLES = {
    "subscribers": subscriber_table,
    "items": item_table,
    "interactions": interaction_table,
}
# record field -> the column name the user knows it by (in messages)
SHOWN = {"external_key": "key", "subscriber_key": "subscriber_key", "item_key": "item_key"}


_PLAIN = (int, float, bool, datetime)


def _nul_in(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, Mapping):
        return any(_nul_in(k) or _nul_in(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_nul_in(v) for v in value)
    return False


def _limit(table: Any, field: str) -> int | None:
    if field in ("subscriber_key", "item_key"):
        return KEY_CHARS
    column = table.c.get(field)
    length = getattr(getattr(column, "type", None), "length", None)
    return int(length) if length else None


_LIMITS: dict[tuple[str, str], int | None] = {}  # (entity, field) -> limit, read once


def _cached_limit(entity: str, field: str) -> int | None:
    key = (entity, field)
    if key not in _LIMITS:
        _LIMITS[key] = _limit(TABLES[entity], field)
    return _LIMITS[key]


def check_storable(entity: str, record: Mapping[str, Any]) -> None:
    """Raise RowError naming the first value the database would refuse (NUL, too long)."""
    for field, value in record.items():
        if value is None or type(value) in _PLAIN:
            continue  # numbers, times and booleans hold neither NULs nor long text
        name = SHOWN.get(field, field)
        if _nul_in(value):
            raise RowError(f"{name} contains a NUL character (remove it)")
        limit = _cached_limit(entity, field)
        if isinstance(value, str) and limit is not None and len(value) > limit:
            raise RowError(f"{name} is {len(value):,} characters long; the limit is {limit}")
    for topic in record.get("topics") or ():
        if isinstance(topic, str) and len(topic) > TOPIC_CHARS:
            raise RowError(f"topic {topic[:40]!r}... is longer than {TOPIC_CHARS} characters")
