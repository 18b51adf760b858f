"""Attack payloads through segment sql rules and sync queries, on SQLite and PostgreSQL.

Each payload is tried the way an attacker with a marketer's access would: as a segment file's
``sql:`` rule and as a sync source query. Whatever the guard answers, afterwards the victim
table has all its rows (0 writes), no marker file exists (0 commands run through
``COPY ... TO PROGRAM``), and no query of ours is still running on the server (0 queries past
the deadline). A hypothesis fuzz test then feeds generated statements to the checker and runs
every accepted one with no other guard at all: none of them writes.
"""

from __future__ import annotations

import contextlib
import sqlite3
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from newsletter.config import SourceQueries
from newsletter.db import make_engine
from newsletter.plan.segments import SegmentError, parse_segment
from newsletter.store.readonly import (
    GUARD_PARAMS,
    QueryTimeout,
    SqlLimits,
    UnsafeQuery,
    check_select,
    read_only,
)
from newsletter.store.segments import segment_ids
from newsletter.store.sync import SyncError, sync_source
from testsupport import POSTGRES_URL, postgres_source_schema, require_postgres

NOW = datetime(2026, 3, 1, tzinfo=UTC)
VICTIM_ROWS = 3
LIMITS = SqlLimits(timeout_seconds=1.0)
MARKER = Path("/tmp") / f"newsletter-pwned-{uuid.uuid4().hex[:8]}"


def payloads() -> list[str]:
    """Known tricks: comments and quotes, dollar quotes, E'' strings, COMMIT, stacked
    statements, data-modifying CTEs, SELECT INTO, locks, side-effect functions, COPY."""
    copy = f"COPY (SELECT 1) TO PROGRAM 'id > {MARKER}'"
    return [
        "SELECT 1 AS id -- '\n) AS z; COMMIT; DELETE FROM victim; "
        f"{copy}; SELECT * FROM (SELECT 1 AS id /* ' */",
        "SELECT 1 AS id /* ' */) AS z; COMMIT; DELETE FROM victim; --",
        "SELECT $$'$$ AS id) AS z; DELETE FROM victim; SELECT * FROM (SELECT '$$' AS id",
        "SELECT E'\\'' AS id) AS z; COMMIT; DELETE FROM victim; SELECT (SELECT 1 AS id",
        "SELECT 1 AS id; DELETE FROM victim",
        "SELECT 1 AS id; COMMIT; DELETE FROM victim",
        "COMMIT; DELETE FROM victim",
        f"{copy}",
        f"SELECT 1 AS id; {copy}",
        "WITH d AS (DELETE FROM victim RETURNING id) SELECT id FROM d",
        "WITH d AS (UPDATE victim SET id = 0 RETURNING id) SELECT id FROM d",
        "SELECT id INTO stolen FROM victim",
        "SELECT id FROM victim FOR UPDATE",
        "DELETE FROM victim",
        "DROP TABLE victim",
        "DO $$ BEGIN DELETE FROM victim; END $$",
        "SELECT set_config('transaction_read_only', 'off', true) AS id",
        "SELECT pg_sleep(30) AS id",
        "SELECT 1 AS id WHERE pg_catalog.pg_sleep(30) IS NOT NULL",
        'SELECT "PG_SLEEP"(30) AS id',
        'SELECT U&"pg\\005fsleep"(30) AS id',
        "SELECT 1 AS id FROM pg_read_file('/etc/passwd')",
        "SELECT lo_import('/etc/passwd') AS id",
        "SELECT pg_terminate_backend(pg_backend_pid()) AS id",
        "SELECT id FROM dblink('dbname=test', 'DELETE FROM victim') AS t(id int)",
        "SELECT 1 AS id WHERE query_to_xml('DELETE FROM victim', true, true, '') IS NULL",
        "SELECT load_extension('/tmp/evil') AS id",
        "PRAGMA query_only = OFF",
        "ATTACH DATABASE '/tmp/evil.db' AS evil",
        # runaway queries that are valid SELECTs: the deadline ends them
        "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) "
        "SELECT count(*) AS id FROM r",
    ]


def _victim(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE victim (id INTEGER PRIMARY KEY)"))
        connection.execute(text("INSERT INTO victim VALUES (1), (2), (3)"))


def _victim_rows(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text("SELECT count(*) FROM victim")).scalar_one())


def _running_queries(engine: Engine) -> int:
    """Our queries still running on the server (PostgreSQL); SQLite has none by construction."""
    if engine.dialect.name != "postgresql":
        return 0
    with engine.connect() as connection:
        return int(
            connection.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE state = 'active'"
                    " AND pid <> pg_backend_pid() AND query LIKE '%victim%'"
                )
            ).scalar_one()
        )


@pytest.fixture(autouse=True)
def no_marker() -> Iterator[None]:
    MARKER.unlink(missing_ok=True)
    yield
    MARKER.unlink(missing_ok=True)


def _assert_harmless(engine: Engine) -> None:
    assert _victim_rows(engine) == VICTIM_ROWS
    assert not MARKER.exists()
    assert _running_queries(engine) == 0


@pytest.mark.parametrize("payload", payloads())
def test_segment_sql_payloads_write_nothing_and_run_nothing(engine: Engine, payload: str) -> None:
    _victim(engine)
    rule = "rule:\n  sql: |\n" + "".join(f"    {line}\n" for line in payload.splitlines())
    try:
        definition = parse_segment(rule, source="evil.yaml")
        segment_ids(engine, definition=definition, now=NOW, limits=LIMITS)
    except SegmentError as exc:
        assert str(exc).startswith("evil.yaml")
        assert "Traceback" not in str(exc)
    _assert_harmless(engine)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def source(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Engine, str]]:
    """A source database with a victim table: (owner engine to check it, URL to sync from)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'shop.db'}"
        owner = make_engine(url)
        _victim(owner)
        yield owner, url
        owner.dispose()
        return
    with postgres_source_schema() as (owner_url, reader_url):
        owner = make_engine(owner_url)
        _victim(owner)
        yield owner, reader_url
        owner.dispose()


@pytest.mark.parametrize("payload", payloads())
def test_sync_query_payloads_write_nothing_and_run_nothing(
    sqlite_engine: Engine, source: tuple[Engine, str], payload: str
) -> None:
    owner, url = source
    queries = SourceQueries(url=url, subscribers=payload)
    try:
        sync_source(sqlite_engine, name="shop", source=queries, now=NOW, limits=LIMITS)
    except SyncError as exc:
        assert str(exc).startswith("source 'shop' subscribers query")
    _assert_harmless(owner)


@pytest.mark.postgres
def test_payloads_do_nothing_even_as_a_superuser_that_is_allowed(pg_engine: Engine) -> None:
    """Without the read-only role (superuser allowed), parsing, the one-statement protocol,
    READ ONLY and the deadline still stop every payload."""
    _victim(pg_engine)
    limits = SqlLimits(timeout_seconds=1.0, allow_superuser=True, reader_role=None)
    for payload in payloads():
        rule = "rule:\n  sql: |\n" + "".join(f"    {line}\n" for line in payload.splitlines())
        with contextlib.suppress(SegmentError):
            segment_ids(
                pg_engine, definition=parse_segment(rule, source="e.yaml"), now=NOW, limits=limits
            )
        _assert_harmless(pg_engine)


def test_a_runaway_query_ends_with_a_clear_timeout(engine: Engine) -> None:
    sql = "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r"
    with (
        pytest.raises(QueryTimeout, match=r"ran longer than 0\.5 s"),
        read_only(engine, limits=SqlLimits(timeout_seconds=0.5)) as connection,
    ):
        connection.execute(text(sql))
    rule = f"rule: {{sql: '{sql.replace('count(*)', 'count(*) AS id')}'}}\n"
    with pytest.raises(SegmentError, match=r"^r\.yaml: the sql rule ran longer than 0\.5 s"):
        segment_ids(
            engine,
            definition=parse_segment(rule, source="r.yaml"),
            now=NOW,
            limits=SqlLimits(timeout_seconds=0.5),
        )
    assert _running_queries(engine) == 0


@pytest.mark.postgres
def test_postgres_runs_one_statement_per_execute_even_if_the_check_were_fooled(
    pg_engine: Engine,
) -> None:
    _victim(pg_engine)
    stacked = "SELECT 1 WHERE CAST(:nl_guard AS INTEGER) = 1; COMMIT; DELETE FROM victim"
    limits = SqlLimits(allow_superuser=True, reader_role=None)
    with (
        pytest.raises(DBAPIError, match="multiple commands"),
        read_only(pg_engine, limits=limits) as connection,
    ):
        connection.execute(text(stacked), GUARD_PARAMS)
    assert _victim_rows(pg_engine) == VICTIM_ROWS


@pytest.mark.postgres
def test_user_sql_refuses_a_postgres_superuser_unless_allowed(pg_engine: Engine) -> None:
    definition = parse_segment("rule: {sql: 'SELECT id FROM subscriber'}\n", source="s.yaml")
    alone = SqlLimits(reader_role=None)
    with pytest.raises(SegmentError, match=r"superuser 'postgres'.*allow_superuser_sql"):
        segment_ids(pg_engine, definition=definition, now=NOW, limits=alone)
    allowed = SqlLimits(reader_role=None, allow_superuser=True)
    assert segment_ids(pg_engine, definition=definition, now=NOW, limits=allowed) == []
    # with the reader role (README) the superuser connection drops to it: allowed
    assert segment_ids(pg_engine, definition=definition, now=NOW) == []
    # segments without user SQL are not user SQL: they run as configured
    plain = parse_segment("rule: {status: active}\n", source="p.yaml")
    assert segment_ids(pg_engine, definition=plain, now=NOW, limits=alone) == []


@pytest.mark.postgres
def test_sync_refuses_a_superuser_source_and_works_with_a_read_only_role(
    sqlite_engine: Engine,
) -> None:
    with postgres_source_schema() as (owner_url, reader_url):
        owner = make_engine(owner_url)
        with owner.begin() as connection:
            connection.execute(text('CREATE TABLE people (k TEXT, mail TEXT, "comment" TEXT)'))
            connection.execute(text("INSERT INTO people VALUES ('a', 'a@example.com', 'x')"))
        owner.dispose()
        query = 'SELECT k AS subscriber_key, mail AS email, "comment" AS note FROM people'
        superuser = SourceQueries(url=owner_url, subscribers=query)
        with pytest.raises(SyncError, match="superuser"):
            sync_source(sqlite_engine, name="s", source=superuser, now=NOW)
        reader = SourceQueries(url=reader_url, subscribers=query)
        (report,) = sync_source(sqlite_engine, name="s", source=reader, now=NOW)
        assert (report.fetched, report.loaded) == (1, 1)


def test_quoted_column_names_named_like_keywords_work(engine: Engine) -> None:
    sql = "SELECT id FROM subscriber WHERE \"status\" = 'active' AND \"timezone\" <> 'delete'"
    assert check_select(sql) == sql
    definition = parse_segment(f"rule:\n  sql: |\n    {sql}\n", source="q.yaml")
    assert segment_ids(engine, definition=definition, now=NOW) == []


# ---- fuzzing the checker: an accepted statement never writes, even with no other guard ----

PIECES = [
    "SELECT 1 AS id",
    "SELECT id FROM victim",
    " -- '",
    "\n",
    " /* ' */",
    " /* */",
    " '",
    " ''",
    " $$",
    " $$'$$",
    " E'\\''",
    ";",
    " COMMIT",
    " BEGIN",
    " DELETE FROM victim",
    " INSERT INTO victim VALUES (9)",
    " UPDATE victim SET id = id + 10",
    " DROP TABLE victim",
    " CREATE TABLE made (x int)",
    " ) AS z",
    " (",
    " )",
    " WITH d AS (DELETE FROM victim RETURNING id)",
    " SELECT id FROM d",
    " INTO made",
    " UNION SELECT 2",
    " WHERE 'a' = '",
    ' "',
    ' "comment"',
    f" COPY (SELECT 1) TO PROGRAM 'id > {MARKER}'",
    " FOR UPDATE",
    " , 1",
    " \\",
]
FIXTURE_CHECK = HealthCheck.function_scoped_fixture
HEADS = ["SELECT 1 AS id", "SELECT id FROM victim", "WITH d AS (SELECT 1 AS id) SELECT id FROM d"]
statements = st.builds(
    lambda head, tail: head + "".join(tail),
    st.sampled_from(["", *HEADS]),
    st.lists(st.sampled_from(PIECES), min_size=1, max_size=10),
)


def _sqlite_writes(path: Path, sql: str) -> int:
    """Run `sql` as a script (many statements allowed, no read-only mode): rows and tables
    changed."""
    connection = sqlite3.connect(path)
    try:
        before = connection.total_changes
        with contextlib.suppress(sqlite3.Error):
            connection.executescript(sql)
        tables = connection.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        return connection.total_changes - before + (tables - 1)
    finally:
        connection.close()


@settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(sql=statements)
def test_fuzz_no_accepted_statement_writes_on_sqlite(tmp_path: Path, sql: str) -> None:
    try:
        check_select(sql, dialect="sqlite")
    except UnsafeQuery:
        return
    path = tmp_path / "fuzz.db"
    path.unlink(missing_ok=True)
    with sqlite3.connect(path) as setup:
        setup.execute("CREATE TABLE victim (id INTEGER PRIMARY KEY)")
        setup.execute("INSERT INTO victim VALUES (1), (2), (3)")
    assert _sqlite_writes(path, sql) == 0, sql


@pytest.fixture(scope="module")
def fuzz_pg() -> Iterator[Engine]:
    require_postgres()
    schema = f"fz_{uuid.uuid4().hex[:10]}"
    engine = make_engine(POSTGRES_URL, connect_args={"options": f"-csearch_path={schema}"})
    with engine.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        connection.execute(text("CREATE TABLE victim (id INTEGER PRIMARY KEY)"))
        connection.execute(text("INSERT INTO victim VALUES (1), (2), (3)"))
    yield engine
    with engine.begin() as connection:
        connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    engine.dispose()


def _pg_writes(engine: Engine, sql: str) -> int:
    """Run `sql` over the simple protocol as the superuser (no guard): rows and tables changed."""
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        try:
            cursor.execute("SET statement_timeout = 2000")
            cursor.execute(sql)  # no parameters: psycopg's simple protocol, many statements
        except Exception:
            pass
        raw.rollback()
        cursor.execute(
            "SELECT (SELECT count(*) FROM victim), (SELECT sum(id) FROM victim),"
            " (SELECT count(*) FROM pg_tables WHERE schemaname = current_schema())"
        )
        return 0 if tuple(cursor.fetchone()) == (3, 6, 1) else 1
    finally:
        raw.close()


@pytest.mark.postgres
@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(sql=statements)
def test_fuzz_no_accepted_statement_writes_on_postgres(fuzz_pg: Engine, sql: str) -> None:
    try:
        check_select(sql, dialect="postgresql")
    except UnsafeQuery:
        return
    assert _pg_writes(fuzz_pg, sql) == 0, sql
    assert not MARKER.exists(), sql
