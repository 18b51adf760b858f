"""Data for dispatcher tests: a small synthetic publisher, a 'weekly' campaign, its plan.

Importable by name (``tests/deliver`` is on sys.path via conftest) so subprocess-driven tests
and scripts can seed a database the same way the fixtures do.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine

DISPATCH_NOW = datetime(2026, 6, 1, 5, 0, tzinfo=UTC)  # a Monday, before the 08:00 send hour
DISPATCH_CONFIG = {
    "arms": {"popular": 0.2, "control": 0.0},
    "n_items": 4,
    "sections": [
        {"title": "Top picks", "kind": "top_picks", "count": 2},
        {"title": "Trending", "kind": "trending", "count": 2},
    ],
}


def seed_dispatch_world(engine: Engine, *, subscribers: int = 30, seed: int = 3) -> None:
    """A small synthetic publisher and a 'weekly' digest campaign to every known subscriber.

    The segment 'all-known' selects every status, so the plan records a skip reason for
    subscribers who bounced or unsubscribed (the shipped 'everyone' selects active ones only).
    """
    from newsletter.db import session_scope
    from newsletter.models import Campaign, Segment
    from newsletter.simulate.world import generate_world
    from newsletter.store.frames import load_frames

    world = generate_world(
        subscribers=subscribers,
        items=40,
        interactions=subscribers * 20,
        now=DISPATCH_NOW,
        seed=seed,
    )
    load_frames(engine, frames=world.frames, now=DISPATCH_NOW, origin="test")
    with session_scope(engine) as s:
        s.add(
            Segment(
                name="all-known",
                definition="rule: {not: {status: nobody}}\n",
                updated_at=DISPATCH_NOW,
            )
        )
        s.add(
            Campaign(
                name="weekly",
                template_name="digest",
                segment_name="all-known",
                config=DISPATCH_CONFIG,
                created_at=DISPATCH_NOW,
            )
        )


def plan_dispatch_run(
    engine: Engine, *, scheduled_for: datetime | None = None, shard_count: int = 1
) -> int:
    """Plan the 'weekly' campaign (popularity slots: fast) and return the run id."""
    from newsletter.config import Settings
    from newsletter.plan.planner import plan_run
    from newsletter.plan.sources import popularity_slot_source

    result = plan_run(
        engine,
        campaign="weekly",
        now=DISPATCH_NOW,
        settings=Settings(),
        scheduled_for=scheduled_for,
        shard_count=shard_count,
        source_factory=popularity_slot_source,
    )
    return result.run_id
