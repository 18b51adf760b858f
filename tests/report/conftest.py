"""A small simulated campaign (SQLite), built once for the report tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from report_world import small_world
from sqlalchemy import Engine

from newsletter.db import make_engine, upgrade
from newsletter.simulate.loop import simulate


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Engine, str]]:
    """(engine, database URL) of a 3-week simulation of 300 subscribers."""
    folder: Path = tmp_path_factory.mktemp("simulated")
    url = f"sqlite:///{folder / 'sim.db'}"
    engine = make_engine(url)
    upgrade(engine)
    simulate(engine=engine, config=small_world(), database_url=url)
    yield engine, url
    engine.dispose()
