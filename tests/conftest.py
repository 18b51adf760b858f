"""Shared fixtures: a clean migrated database per test, on SQLite and on PostgreSQL.

`engine` runs a test on both databases (the PostgreSQL case carries the `postgres` marker);
`sqlite_engine` and `pg_engine` pick one. PostgreSQL tests get a fresh schema each and need
the server at NEWSLETTER_TEST_POSTGRES_URL (default postgresql://postgres@127.0.0.1:5432/test);
when it is unreachable they skip, except under CI=true where they fail.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from newsletter.db import make_engine, upgrade
from testsupport import fresh_postgres_engine


@pytest.fixture
def empty_sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    """A SQLite file with no tables yet."""
    engine = make_engine(f"sqlite:///{tmp_path / 'test.db'}")
    yield engine
    engine.dispose()


@pytest.fixture
def empty_pg_engine() -> Iterator[Engine]:
    """A PostgreSQL schema with no tables yet."""
    yield from fresh_postgres_engine()


@pytest.fixture
def sqlite_engine(empty_sqlite_engine: Engine) -> Engine:
    """A migrated SQLite database."""
    upgrade(empty_sqlite_engine)
    return empty_sqlite_engine


@pytest.fixture
def pg_engine(empty_pg_engine: Engine) -> Engine:
    """A migrated PostgreSQL schema."""
    upgrade(empty_pg_engine)
    return empty_pg_engine


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest) -> Engine:
    """A migrated database: the test runs once on SQLite and once on PostgreSQL."""
    name = "sqlite_engine" if request.param == "sqlite" else "pg_engine"
    return request.getfixturevalue(name)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_engine(request: pytest.FixtureRequest) -> Engine:
    """An empty database (no tables) on SQLite and on PostgreSQL."""
    name = "empty_sqlite_engine" if request.param == "sqlite" else "empty_pg_engine"
    return request.getfixturevalue(name)
