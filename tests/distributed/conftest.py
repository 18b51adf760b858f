"""Fixtures for the distributed tests: the real brokers (RabbitMQ and Redis on this machine),
real SMTP servers in their own process, and PostgreSQL databases other processes can reach.

The brokers must be up (``.ci/run`` starts them); when one is unreachable its tests skip,
except under CI=true where they fail.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "deliver"))
from celery_workers import RABBITMQ_URL, REDIS_URL
from smtp_server import SmtpTestServer, start_smtp_server

from newsletter.db import upgrade
from testsupport import IN_CI, POSTGRES_URL, fresh_postgres_engine

BROKERS = {"rabbitmq": (RABBITMQ_URL, 5672), "redis": (REDIS_URL, 6379)}


def _reachable(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture(params=sorted(BROKERS))
def broker_url(request: pytest.FixtureRequest) -> str:
    """The URL of a real broker: the test runs once on RabbitMQ and once on Redis."""
    url, port = BROKERS[request.param]
    if not _reachable(port):
        message = f"{request.param} is not reachable at 127.0.0.1:{port} (see .ci/run)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return url


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


@pytest.fixture
def pg_pair(request: pytest.FixtureRequest) -> Callable[[], tuple[Engine, str]]:
    """Factory: a new migrated PostgreSQL schema as (engine, URL another process can use)."""

    def make() -> tuple[Engine, str]:
        generator = fresh_postgres_engine()
        engine = next(generator)
        request.addfinalizer(lambda: next(generator, None))
        upgrade(engine)
        with engine.connect() as c:
            schema = c.execute(text("select current_schema()")).scalar_one()
        return engine, f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"

    return make
