"""A small simulated campaign (SQLite), built once for the report tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from newsletter.db import make_engine, upgrade
from newsletter.simulate.loop import SimulationConfig, simulate
from newsletter.simulate.params import load_world


def small_world(weeks: int = 3, **email: float) -> SimulationConfig:
    world = load_world("news").with_overrides(
        catalogue={"initial_items": 150, "items_per_week": 50},
        reading={"history_weeks": 2},
        **({"email": email} if email else {}),
    )
    return SimulationConfig(world=world, subscribers=300, weeks=weeks, seed=11, workers=1)


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
