"""The dialect's INSERT, for ``ON CONFLICT`` upserts on PostgreSQL and SQLite alike."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.dialects import postgresql, sqlite


def dialect_insert(connection: Connection, *, table: Table) -> Any:
    """`insert(table)` of the connection's dialect, which has ``on_conflict_do_*``.

    Typed `Any`: PostgreSQL's and SQLite's `Insert` are distinct classes with the same upsert
    methods, and every caller uses only those.
    """
    module = postgresql if connection.dialect.name == "postgresql" else sqlite
    return module.insert(table)
