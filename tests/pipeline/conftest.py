"""Fixtures for pipeline tests: the dispatcher's synthetic world and real SMTP servers.

``tests/deliver`` is put on sys.path so its importable helpers (``dispatch_data``,
``smtp_server``) serve here too; ``database_pair`` gives (engine, url) pairs on one kind of
database, each URL complete enough for another process to reach the same database.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

sys.path.insert(0, str(Path(__file__).parents[1] / "deliver"))
from smtp_server import SmtpTestServer, start_smtp_server

from newsletter.db import make_engine, upgrade
from testsupport import POSTGRES_URL, fresh_postgres_engine


@pytest.fixture
def smtp_servers(tmp_path: Path) -> Iterator[Callable[..., SmtpTestServer]]:
    """Start real SMTP servers (own processes), each storing into its own folder."""
    servers: list[SmtpTestServer] = []

    def start(**options: Any) -> SmtpTestServer:
        server = start_smtp_server(tmp_path / f"mail{len(servers)}", **options)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def _postgres(request: pytest.FixtureRequest) -> tuple[Engine, str]:
    generator = fresh_postgres_engine()
    engine = next(generator)
    request.addfinalizer(lambda: next(generator, None))
    upgrade(engine)
    with engine.connect() as c:
        schema = c.execute(text("select current_schema()")).scalar_one()
    return engine, f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_pair(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[[], tuple[Engine, str]]]:
    """Factory: a new migrated database of the parametrized kind, as (engine, url)."""
    made: list[Engine] = []

    def make() -> tuple[Engine, str]:
        if request.param == "postgres":
            return _postgres(request)
        url = f"sqlite:///{tmp_path / f'db{len(made)}.db'}"
        engine = make_engine(url)
        upgrade(engine)
        made.append(engine)
        return engine, url

    yield make
    for engine in made:
        engine.dispose()
