"""Fixtures for the web UI: a seeded database, settings, a clock and a TestClient."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from newsletter.api.app import create_app
from newsletter.config import Settings

sys.path.insert(0, str(Path(__file__).parent))  # `import ui_world` under any import mode
from ui_world import BASE, NOW, SECRET, Clock, UiWorld, build_ui_world


@pytest.fixture
def ui_settings(tmp_path: Path) -> Settings:
    return Settings(
        secret_key=SECRET,
        base_url=BASE,
        smtp_url=f"outbox:{tmp_path / 'outbox'}",
        sender="The Daily <news@example.com>",
    )


@pytest.fixture
def own(tmp_path: Path) -> Path:
    """An empty folder for the user's own segment files."""
    folder = tmp_path / "my-segments"
    folder.mkdir()
    return folder


@pytest.fixture
def ui_world(engine: Engine) -> UiWorld:
    return build_ui_world(engine)


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW)


@pytest.fixture
def client(
    engine: Engine, ui_settings: Settings, ui_world: UiWorld, clock: Clock
) -> Iterator[TestClient]:
    app = create_app(settings=ui_settings, engine=engine, clock=clock)
    with TestClient(app, base_url=BASE, follow_redirects=False) as test_client:
        yield test_client
