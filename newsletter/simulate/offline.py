"""A simulated world's site behaviour as offline data: what ``newsletter evaluate --world`` reads.

:func:`world_log` builds a world (:mod:`newsletter.simulate.truth`) with its history and
``weeks`` further weeks of site behaviour (publishing, sign-ups, drifting tastes, reads; no
email is sent), through the same ingest path and database tables the simulation uses, in a
temporary SQLite database, and reads it back as the planner would
(:func:`newsletter.store.matrices.load_matrices`). The last week is the one the ``aging``
protocol holds out: ``cut`` is its start.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from newsletter.db import make_engine, upgrade
from newsletter.recommend.base import InteractionData, ItemCatalog
from newsletter.simulate.loop import FIRST_SEND, WEEK, Loop, SimulationConfig, simulation_settings
from newsletter.simulate.params import WorldParams
from newsletter.store.matrices import load_matrices


@dataclass(frozen=True)
class WorldLog:
    """A world's behaviour log and catalogue, and where its last week starts."""

    data: InteractionData
    catalog: ItemCatalog
    cut: float
    horizon: float = WEEK


def world_log(world: WorldParams, *, subscribers: int, weeks: int, seed: int) -> WorldLog:
    """The world's history plus ``weeks`` weeks of site behaviour (``weeks >= 1``)."""
    if weeks < 1:
        raise ValueError(f"weeks must be at least 1 (got {weeks}): the last week is the test")
    with tempfile.TemporaryDirectory(prefix="newsletter-world-") as folder:
        url = f"sqlite:///{Path(folder) / 'world.db'}"
        engine = make_engine(url)
        try:
            upgrade(engine)
            config = SimulationConfig(world=world, subscribers=subscribers, weeks=1, seed=seed)
            loop = Loop(engine, config, simulation_settings(config, url))
            loop.history()
            for week in range(1, weeks + 1):
                loop.new_week(week)
            m = load_matrices(engine)
        finally:
            engine.dispose()
    cut = FIRST_SEND.timestamp() + (weeks - 1) * WEEK
    return WorldLog(data=m.data, catalog=m.catalog, cut=cut)
