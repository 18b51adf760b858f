"""Fixtures for the tracking service: settings, a sent message (``world``), a clock, a client."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from newsletter.api.app import create_app
from newsletter.config import Settings

sys.path.insert(0, str(Path(__file__).parent))  # `import api_world` under any import mode
from api_world import SECRET, SENT_AT, Clock, World, build_world


@pytest.fixture
def settings() -> Settings:
    return Settings(secret_key=SECRET, base_url="https://news.example.com")


@pytest.fixture
def world(engine: Engine) -> World:
    return build_world(engine)


@pytest.fixture
def clock() -> Clock:
    return Clock(SENT_AT + timedelta(seconds=60))


@pytest.fixture
def client(engine: Engine, settings: Settings, clock: Clock) -> Iterator[TestClient]:
    app = create_app(settings=settings, engine=engine, clock=clock)
    with TestClient(app, follow_redirects=False) as test_client:
        yield test_client
