"""The demo: a synthetic publisher in a fresh SQLite database, one weekly digest, a report.

`run_demo` builds a demo SQLite database in a folder from a synthetic publisher, then runs
the pipeline on it: create a weekly digest campaign, plan it (train the recommender, apply
cadence, assign arms, fill slots), render and deliver every message as an .eml file into
DIR/outbox (clickable under ``newsletter serve --demo``) and simulate how the readers respond.
Then it measures: a few weeks of the closed-loop simulator (``newsletter simulate``, news
world) run in DIR/simulation.db, and DIR/report.html is their pooled weekly report, so the
lift the demo prints is pooled over simulated weeks with its interval, not a one-shot.
It returns a summary of every step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from newsletter.config import Settings
from newsletter.keys import DEMO_SECRET

if TYPE_CHECKING:  # the CLI imports this module's defaults: keep it light
    from newsletter.simulate.world import World

DEMO_CAMPAIGN = "weekly-digest"
DEMO_WEEKS = 3  # simulated weeks for the pooled report (0: none)
DEMO_SIMULATED_SUBSCRIBERS = 1000

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
    weeks: int = DEMO_WEEKS,
    simulated_subscribers: int = DEMO_SIMULATED_SUBSCRIBERS,
    progress: Progress = _noop,
) -> DemoResult:
    """Build DIR/newsletter.db from a synthetic world, run the pipeline, simulate some weeks."""
    from newsletter.db import make_engine, upgrade
    from newsletter.simulate.world import generate_world
    from newsletter.store.frames import load_frames
    from newsletter.store.queries import count_rows

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
        load_frames(engine, frames=world.frames, now=now, origin="synthetic")
        result.steps["data"] = count_rows(engine) | {"topics": len(world.topics)}
        data = result.steps["data"]
        progress(
            f"loaded {data['subscribers']:,} subscribers, {data['items']:,} articles in "
            f"{data['topics']} topics and {data['interactions']:,} interactions"
        )
        _run_pipeline(engine, result=result, world=world, now=now, progress=progress)
    finally:
        engine.dispose()
    if weeks > 0:
        result.steps["simulation"] = _simulate_weeks(
            directory, weeks=weeks, subscribers=simulated_subscribers, seed=seed, progress=progress
        )
    return result


def _simulate_weeks(
    directory: Path, *, weeks: int, subscribers: int, seed: int, progress: Progress
) -> dict[str, Any]:
    """The closed-loop simulator for a few weeks; DIR/report.html is their pooled report."""
    from newsletter.simulate.loop import SimulationConfig
    from newsletter.simulate.params import load_world
    from newsletter.simulate.run import run_simulation

    database = directory / "simulation.db"
    database.unlink(missing_ok=True)
    progress(f"simulating {weeks} weekly digests to {subscribers:,} simulated readers ...")
    config = SimulationConfig(
        world=load_world("news"), subscribers=subscribers, weeks=weeks, seed=seed, workers=1
    )
    html = directory / "report.html"
    out = run_simulation(config, database_url=f"sqlite:///{database}", html=html, progress=progress)
    keys = ("weeks", "subscribers", "arms", "lift", "lift_ci95", "verdict", "utility")
    return {k: out[k] for k in keys if k in out} | {"html": str(html), "database": str(database)}


def demo_settings(directory: Path, database_url: str) -> Settings:
    """Settings for the demo: its own database, an outbox folder, a marked demo secret."""
    return Settings(
        database_url=database_url,
        secret_key=DEMO_SECRET,
        smtp_url=f"outbox:{directory / 'outbox'}",
        sender="The Demo Daily <digest@news.example.com>",
    )


def _run_pipeline(
    engine: Any, *, result: DemoResult, world: World, now: datetime, progress: Progress
) -> None:
    """Campaign -> plan -> render -> deliver -> simulated feedback -> report."""
    from newsletter.pipeline import run_campaign
    from newsletter.simulate.feedback import simulate_feedback
    from newsletter.store.campaigns import upsert_campaign

    settings = demo_settings(result.directory, result.database_url)
    upsert_campaign(
        engine,
        name=DEMO_CAMPAIGN,
        template_name="digest",
        segment_name="everyone",
        config={"arms": {"popular": 0.2}, "display_name": "The Demo Daily"},
        now=now,
    )
    progress("planning, rendering and delivering the weekly digest into outbox/ ...")
    summary = run_campaign(
        engine, campaign=DEMO_CAMPAIGN, now=now, settings=settings, transport_url=settings.smtp_url
    )
    plan = summary.plan or {}
    result.steps["plan"] = {
        "run": summary.run_id,
        "arms": plan.get("arms"),
        "skipped": plan.get("skipped"),
    }
    result.steps["deliver"] = {
        "by_status": summary.counts.by_status,
        "outbox": str(result.directory / "outbox"),
    }
    progress(f"delivered {summary.counts.by_status.get('sent', 0):,} messages into outbox/")
    result.steps["feedback"] = simulate_feedback(engine, run_id=summary.run_id, world=world)
    progress("simulated how the synthetic readers respond (opens, clicks, machine events)")
