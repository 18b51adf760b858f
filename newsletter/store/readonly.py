"""Run user-written SQL safely: one SELECT only, parsed before use, run read-only and bounded.

Used by `sync` (a customer's entity queries) and by segments (the raw `sql:` rule). The guards,
each enough on its own against the attacks we know of:

* `check_select` parses the query with a real SQL parser (sqlglot) and accepts exactly one
  SELECT (or WITH ... SELECT, or a UNION of SELECTs) in which every CTE is a SELECT; no write,
  DDL, transaction control, ``SELECT ... INTO``, row lock, or side-effect function
  (``pg_sleep``, ``pg_read_file``, ``lo_import``, ``dblink``, ``set_config``...) anywhere in it.
  Comments, dollar quotes and ``E''`` strings are tokenized as the database does, so a quote
  hidden in a comment cannot smuggle a second statement past the check.
* every user query is sent with at least one bound parameter (`GUARD`), so psycopg uses the
  extended protocol: PostgreSQL runs one statement per execute, whatever the text says.
* `read_only` runs it in a READ ONLY transaction (SQLite: ``query_only``) with a deadline
  (PostgreSQL ``statement_timeout``; SQLite a progress handler) that ends runaway queries with
  `QueryTimeout`; on PostgreSQL it switches to the `READER_ROLE` role when that role exists
  and the connection may use it, and refuses to run as a superuser unless allowed
  (``allow_superuser_sql``).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import sqlglot
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError
from sqlglot import exp

from newsletter.config import Settings

USER_SQL_TIMEOUT_SECONDS = 30.0
READER_ROLE = "newsletter_reader"
GUARD = "CAST(:nl_guard AS INTEGER) = 1"  # a bound parameter: forces the extended protocol
GUARD_PARAMS = {"nl_guard": 1}
DIALECTS = {"postgresql": "postgres", "sqlite": "sqlite"}
_PLAIN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")
logging.getLogger("sqlglot").setLevel(logging.ERROR)  # no "falling back to Command" noise

# Statements and clauses that are never part of a read-only query.
FORBIDDEN_NODES: tuple[type[exp.Expression], ...] = tuple(
    getattr(exp, name)
    for name in (
        "DML",
        "DDL",
        "Command",
        "Drop",
        "Alter",
        "Set",
        "Pragma",
        "Transaction",
        "Commit",
        "Rollback",
        "Into",
        "Lock",
        "Use",
        "Attach",
        "Detach",
        "Kill",
        "Grant",
        "Revoke",
        "Analyze",
        "Comment",
        "LoadData",
        "TruncateTable",
        "Execute",
        "Declare",
        "Refresh",
        "Cache",
        "Uncache",
    )
    if hasattr(exp, name)
)
# Functions with side effects (files, processes, sessions, sequences, locks, sleeping, other
# connections, running SQL text). Matched on the function name, in any schema and any case.
SIDE_EFFECT_FUNCTIONS = frozenset(
    {
        "pg_sleep",
        "pg_sleep_for",
        "pg_sleep_until",
        "pg_read_file",
        "pg_read_binary_file",
        "pg_stat_file",
        "pg_file_write",
        "pg_file_rename",
        "pg_file_unlink",
        "pg_terminate_backend",
        "pg_cancel_backend",
        "pg_reload_conf",
        "pg_rotate_logfile",
        "pg_notify",
        "pg_promote",
        "pg_switch_wal",
        "pg_export_snapshot",
        "pg_import_system_collations",
        "set_config",
        "nextval",
        "setval",
        "query_to_xml",
        "query_to_xml_and_xmlschema",
        "query_to_xmlschema",
        "cursor_to_xml",
        "cursor_to_xmlschema",
        "load_extension",
        "readfile",
        "writefile",
        "edit",
        "fts3_tokenizer",
        "xp_cmdshell",
        "sys_exec",
        "sys_eval",
    }
)
SIDE_EFFECT_PREFIXES = (
    "lo_",
    "dblink",
    "pg_ls_",
    "pg_advisory",
    "pg_try_advisory",
    "pg_logical_",
    "pg_replication_",
    "pg_create_",
    "pg_drop_",
    "pg_copy_",
    "pg_backup_",
    "pg_start_backup",
    "pg_stop_backup",
    "pg_wal_replay_",
    "pg_log_",
    "pg_signal_",
)


@dataclass(frozen=True)
class SqlLimits:
    """How user SQL may run: its deadline, and whether a PostgreSQL superuser may run it."""

    timeout_seconds: float = USER_SQL_TIMEOUT_SECONDS
    allow_superuser: bool = False
    reader_role: str | None = READER_ROLE

    @classmethod
    def from_settings(cls, settings: Settings) -> SqlLimits:
        """The limits the settings ask for (``allow_superuser_sql``)."""
        return cls(allow_superuser=bool(getattr(settings, "allow_superuser_sql", False)))


class UnsafeQuery(ValueError):
    """The query is not one read-only SELECT; the message says what is wrong (no prefix)."""


class QueryTimeout(ValueError):
    """A user query ran past its deadline and was stopped; the message names the limit."""


def _function_names(node: exp.Func) -> set[str]:
    names = {node.name.lower()} if isinstance(node, exp.Anonymous) else set()
    names.add(node.sql_name().lower())
    names.add(type(node).key.lower())
    return {n for n in names if n}


def _side_effect(node: exp.Func) -> str | None:
    if isinstance(node, exp.Anonymous) and not _PLAIN_NAME.match(node.name):
        return node.name  # an escaped name (U&"pg\005fsleep") could be anything
    for name in _function_names(node):
        if name in SIDE_EFFECT_FUNCTIONS or name.startswith(SIDE_EFFECT_PREFIXES):
            return name
    return None


def _parse(sql: str, dialect: str | None) -> list[exp.Expr]:
    """The statements of `sql` in `dialect` (or in PostgreSQL's, then SQLite's, when None)."""
    errors = []
    for name in [DIALECTS.get(dialect, dialect)] if dialect else ["postgres", "sqlite"]:
        try:
            return [s for s in sqlglot.parse(sql, read=name) if s is not None]
        except sqlglot.errors.SqlglotError as exc:
            errors.append(str(exc).splitlines()[0])
    raise UnsafeQuery(f"is not valid SQL ({errors[0]})")


def _check_tree(statement: exp.Expr) -> None:
    root = statement.unnest() if isinstance(statement, exp.Subquery) else statement
    if not isinstance(root, exp.Select | exp.SetOperation):
        raise UnsafeQuery("must be a SELECT (or WITH ... SELECT)")
    for cte in statement.find_all(exp.CTE):
        if not isinstance(cte.this, exp.Query):
            raise UnsafeQuery("must be read-only: every WITH part must be a SELECT")
    for node in statement.walk():
        if isinstance(node, FORBIDDEN_NODES):
            kind = type(node).__name__.upper()
            raise UnsafeQuery(f"must be read-only; it contains {kind}")
        if isinstance(node, exp.Func):
            name = _side_effect(node)
            if name:
                raise UnsafeQuery(f"must not call {name}() (a function with side effects)")


def check_select(sql: str, *, dialect: str | None = None) -> str:
    """The query without a trailing ';' if it is one read-only SELECT, else UnsafeQuery.

    `dialect` is the database that will run it (SQLAlchemy's name, e.g. ``postgresql``); with
    None the query must be a safe SELECT for PostgreSQL or, failing to parse there, SQLite.
    """
    if "\x00" in sql:
        raise UnsafeQuery("contains a NUL character")
    statements = _parse(sql, dialect)
    if not statements:
        raise UnsafeQuery("must be a SELECT (or WITH ... SELECT); it is empty")
    if len(statements) != 1:
        raise UnsafeQuery(f"must be a single statement (found {len(statements)})")
    _check_tree(statements[0])
    body = sql.strip()
    while body.endswith(";"):
        body = body[:-1].rstrip()
    return body


def _pg_prepare(connection: Connection, *, limits: SqlLimits, user_sql: bool) -> None:
    """READ ONLY and a statement timeout; for user SQL the reader role when usable, and no
    superuser unless allowed."""
    connection.execute(text("SET TRANSACTION READ ONLY"))
    timeout_ms = max(1, int(limits.timeout_seconds * 1000))
    connection.execute(
        text("SELECT set_config('statement_timeout', :ms, true)"), {"ms": str(timeout_ms)}
    )
    if not user_sql:
        return
    role = limits.reader_role
    usable = (
        role
        and connection.execute(
            text(
                "SELECT 1 FROM pg_roles WHERE rolname = :role"
                " AND pg_has_role(current_user, oid, 'MEMBER')"
            ),
            {"role": role},
        ).first()
    )
    if usable:
        connection.execute(text("SELECT set_config('role', :role, true)"), {"role": role})
    row = connection.execute(
        text("SELECT current_user, rolsuper FROM pg_roles WHERE rolname = current_user")
    ).first()
    if row is not None and row[1] and not limits.allow_superuser:
        raise UnsafeQuery(
            f"would run as the PostgreSQL superuser {row[0]!r}: connect as a read-only role "
            f"(or create the role {READER_ROLE!r}, see README), or set "
            "allow_superuser_sql = true"
        )


@contextmanager
def _sqlite_deadline(connection: Connection, seconds: float) -> Iterator[None]:
    """Interrupt any statement still running `seconds` from now (SQLite progress handler)."""
    raw = connection.connection.dbapi_connection
    deadline = time.monotonic() + seconds
    raw.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)  # type: ignore[union-attr]
    try:
        yield
    finally:
        raw.set_progress_handler(None, 0)  # type: ignore[union-attr]


def _timed_out(exc: DBAPIError) -> bool:
    message = str(exc.orig).lower()
    return "statement timeout" in message or "interrupted" in message


@contextmanager
def read_only(
    engine: Engine, *, limits: SqlLimits | None = None, user_sql: bool = True
) -> Iterator[Connection]:
    """A connection whose transaction cannot write and whose queries end by a deadline.

    With `user_sql` (the default) it also takes the reader role and refuses a PostgreSQL
    superuser unless `limits.allow_superuser`; always rolled back at the end. A query past
    the deadline raises `QueryTimeout`.
    """
    limits = limits or SqlLimits()
    timeout_seconds = limits.timeout_seconds
    postgres = engine.dialect.name == "postgresql"
    with engine.connect() as connection:
        if postgres:
            _pg_prepare(connection, limits=limits, user_sql=user_sql)
        else:
            connection.exec_driver_sql("PRAGMA query_only = ON")
        try:
            with _sqlite_deadline(connection, timeout_seconds) if not postgres else _nothing():
                yield connection
        except DBAPIError as exc:
            if _timed_out(exc):
                raise QueryTimeout(
                    f"ran longer than {timeout_seconds:g} s, the limit for user-written SQL, "
                    "and was stopped: make it cheaper (an index, fewer rows)"
                ) from exc
            raise
        finally:
            connection.rollback()
            if not postgres:
                connection.exec_driver_sql("PRAGMA query_only = OFF")


@contextmanager
def _nothing() -> Iterator[None]:
    yield
