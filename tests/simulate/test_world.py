"""The synthetic world is seeded, consistent, and its behaviour follows the hidden tastes."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
from sqlalchemy import Engine

from newsletter.simulate.world import generate_world
from newsletter.store.frames import load_frames
from newsletter.store.queries import count_rows

NOW = datetime(2026, 5, 4, 8, tzinfo=UTC)


def test_same_seed_same_world_and_times_are_consistent() -> None:
    a = generate_world(subscribers=300, items=80, interactions=5000, now=NOW, seed=3)
    b = generate_world(subscribers=300, items=80, interactions=5000, now=NOW, seed=3)
    pd.testing.assert_frame_equal(a.frames.interactions, b.frames.interactions)
    items = a.frames.items.set_index("external_key")
    rows = a.frames.interactions
    published = items.loc[rows["item_key"], "published_at"].to_numpy()
    assert (rows["occurred_at"].to_numpy() >= published).all()
    assert (rows["occurred_at"] <= pd.Timestamp(NOW)).all()
    assert (items["published_at"] <= pd.Timestamp(NOW)).all()
    assert set(a.frames.subscribers["timezone"]) > {"UTC"}


def test_behaviour_follows_preferences() -> None:
    world = generate_world(subscribers=400, items=240, interactions=40000, now=NOW, seed=5)
    rows = world.frames.interactions
    users = rows["subscriber_key"].str.removeprefix("reader-").astype(int).to_numpy() - 1
    items = rows["item_key"].str.removeprefix("article-").astype(int).to_numpy() - 1
    topic = world.item_topic[items]
    favourite = world.preferences.argmax(axis=1)
    share_on_favourite = float(np.mean(topic == favourite[users]))
    assert share_on_favourite > 0.4  # far above the 1/12 a random reader would give


def test_world_loads_into_both_databases(engine: Engine) -> None:
    world = generate_world(subscribers=50, items=20, interactions=400, now=NOW, seed=1)
    load_frames(engine, frames=world.frames, now=NOW, origin="synthetic")
    load_frames(engine, frames=world.frames, now=NOW, origin="synthetic")  # idempotent
    assert count_rows(engine) == {
        "subscribers": 50,
        "items": 20,
        "interactions": len(world.frames.interactions),
    }
