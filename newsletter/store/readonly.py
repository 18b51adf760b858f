"""Run user-written SQL safely: one SELECT only, checked before use and run read-only.

Used by `sync` (a customer's entity queries) and by segments (the raw `sql:` rule). Two
guards: `check_select` refuses anything but a single SELECT / WITH ... SELECT statement and
any write keyword outside string literals and quoted identifiers (quote a column named like a
keyword: `"comment"`); `read_only` runs it in a transaction that cannot write.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine, text

FORBIDDEN_SQL = (
    "insert",
    "update",
    "delete",
    "drop",
    "alter",
    "create",
    "truncate",
    "grant",
    "revoke",
    "attach",
    "detach",
    "pragma",
    "vacuum",
    "copy",
    "call",
    "execute",
    "merge",
    "replace",
    "into",
    "lock",
    "set",
    "reindex",
    "analyze",
    "comment",
    "do",
    "listen",
    "notify",
    "load",
)


class UnsafeQuery(ValueError):
    """The query is not one read-only SELECT; the message says what is wrong (no prefix)."""


def check_select(sql: str) -> str:
    """The query without a trailing ';' if it is one read-only SELECT, else UnsafeQuery.

    Literals, quoted names and comments are blanked before the checks, so a word inside a
    string does not trip them.
    """
    blank = re.sub(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"", "''", sql)
    blank = re.sub(r"--[^\n]*|/\*.*?\*/", " ", blank, flags=re.S).strip()
    body = blank[:-1].rstrip() if blank.endswith(";") else blank
    if ";" in body:
        raise UnsafeQuery("must be a single statement (found a ';')")
    words = re.findall(r"[a-z_]+", body.lower())
    if not words or words[0] not in ("select", "with"):
        raise UnsafeQuery("must be a SELECT (or WITH ... SELECT)")
    bad = sorted(set(words) & set(FORBIDDEN_SQL))
    if bad:
        raise UnsafeQuery(f"must be read-only; it contains {', '.join(bad).upper()}")
    return sql.strip().rstrip(";").strip()


@contextmanager
def read_only(engine: Engine) -> Iterator[Connection]:
    """A connection whose transaction cannot write (rolled back at the end either way)."""
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(text("SET TRANSACTION READ ONLY"))
        else:
            connection.exec_driver_sql("PRAGMA query_only = ON")
        try:
            yield connection
        finally:
            connection.rollback()
            if engine.dialect.name != "postgresql":
                connection.exec_driver_sql("PRAGMA query_only = OFF")
