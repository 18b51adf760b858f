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


BROKEN_IMAGES = (b'src="None"', b'src=3D"None"', b'src=""', b'src=3D""')


@pytest.fixture(autouse=True)
def no_broken_image_in_any_email(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every message any test builds for a transport (delivery, send-test, the UI's test send)
    is checked: no ``src="None"`` and no empty ``src`` (raw or quoted-printable), so an item
    without an image can never ship a broken one unnoticed. Tests that spawn processes check
    their outboxes with ``testsupport.assert_valid_email``."""
    from newsletter.deliver.transport import OutgoingMessage

    original = OutgoingMessage.__init__

    def checked(self: OutgoingMessage, *args: object, **kwargs: object) -> None:
        original(self, *args, **kwargs)  # type: ignore[arg-type]
        for bad in BROKEN_IMAGES:
            assert bad not in self.data, f"message {self.key} has a broken image: {bad!r}"

    monkeypatch.setattr(OutgoingMessage, "__init__", checked)
