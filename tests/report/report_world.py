"""A small simulated world for the report tests (a module of its own: conftest modules of
different test folders share one name, so they cannot be imported)."""

from __future__ import annotations

from newsletter.simulate.loop import SimulationConfig
from newsletter.simulate.params import load_world


def small_world(weeks: int = 3, **email: float) -> SimulationConfig:
    world = load_world("news").with_overrides(
        catalogue={"initial_items": 150, "items_per_week": 50},
        reading={"history_weeks": 2},
        **({"email": email} if email else {}),
    )
    return SimulationConfig(world=world, subscribers=300, weeks=weeks, seed=11, workers=1)
