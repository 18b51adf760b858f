"""Bulk loading: every path keeps the schema intact, skips duplicates and keeps exact times."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, select
from sqlmodel import SQLModel

from newsletter.models import Interaction, Subscriber
from newsletter.simulate.world import generate_world
from newsletter.store import bulk
from newsletter.store.frames import load_frames
from newsletter.store.queries import count_rows

NOW = datetime(2026, 5, 4, 8, tzinfo=UTC)


@pytest.mark.parametrize("large", [False, True], ids=["small-path", "index-rebuild-path"])
def test_loads_are_exact_and_idempotent(
    engine: Engine, large: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if large:  # exercise the drop-and-rebuild paths (empty table, then filled) on small data
        monkeypatch.setattr(bulk, "REBUILD_INDEXES_ROWS", 10)
    world = generate_world(subscribers=60, items=30, interactions=900, now=NOW, seed=2)
    frames = world.frames
    doubled = pd.concat([frames.interactions, frames.interactions.iloc[:50]], ignore_index=True)
    load_frames(
        engine,
        frames=type(frames)(frames.subscribers, frames.items, doubled),
        now=NOW,
        origin="test",
    )
    load_frames(engine, frames=frames, now=NOW, origin="test")  # again: nothing new
    unique = frames.interactions.drop_duplicates(
        subset=["subscriber_key", "item_key", "kind", "occurred_at"]
    )
    assert count_rows(engine) == {"subscribers": 60, "items": 30, "interactions": len(unique)}
    first = unique.sort_values("occurred_at").iloc[0]
    with engine.connect() as connection:
        stored = connection.execute(
            select(Interaction.occurred_at, Subscriber.external_key)  # type: ignore[call-overload]
            .join(Subscriber, Subscriber.id == Interaction.subscriber_id)  # type: ignore[arg-type]
            .order_by(Interaction.occurred_at)
            .limit(1)  # type: ignore[arg-type]
        ).one()
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, SQLModel.metadata) == []  # indexes, keys all back
    assert stored[1] == first["subscriber_key"]
    assert stored[0] == first["occurred_at"].floor("us").to_pydatetime()
