"""Whole-pipeline flows that entry points call: the demo, from data to a report.

`run_demo` builds a demo SQLite database in a folder from a synthetic publisher and runs as
much of the pipeline as the project has, returning a summary of every step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from newsletter.db import make_engine, upgrade
from newsletter.simulate.world import generate_world
from newsletter.store.frames import load_frames
from newsletter.store.queries import count_rows

Progress = Callable[[str], None]


@dataclass
class DemoResult:
    """What the demo did: the database it built and one summary entry per step."""

    directory: Path
    database_url: str
    steps: dict[str, Any] = field(default_factory=dict)


def _noop(_: str) -> None:
    return None


def run_demo(
    *,
    directory: Path,
    now: datetime,
    subscribers: int = 2000,
    items: int = 400,
    interactions: int = 40000,
    seed: int = 7,
    progress: Progress = _noop,
) -> DemoResult:
    """Build DIR/newsletter.db from a synthetic world and run the pipeline on it."""
    directory = directory.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    database = directory / "newsletter.db"
    for stale in (database, database.with_suffix(".db-wal"), database.with_suffix(".db-shm")):
        stale.unlink(missing_ok=True)
    url = f"sqlite:///{database}"
    engine = make_engine(url)
    result = DemoResult(directory=directory, database_url=url)
    try:
        upgrade(engine)
        progress(f"generating a publisher: {subscribers} subscribers, {items} articles")
        world = generate_world(
            subscribers=subscribers, items=items, interactions=interactions, now=now, seed=seed
        )
        load_frames(engine, world.frames, now=now, origin="synthetic")
        result.steps["data"] = count_rows(engine) | {"topics": len(world.topics)}
        progress(f"loaded {result.steps['data']}")
    finally:
        engine.dispose()
    return result
