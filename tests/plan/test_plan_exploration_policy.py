"""exploration_policy = "popular": the exploration slot holds the most popular unread item."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, select, update
from test_plan_planner import NO_HOLDOUT, plan, seed

from newsletter.models import Campaign, Message, Slot
from newsletter.plan.campaigns import CampaignConfigError, parse_campaign_config
from newsletter.tables import campaign_table


def _explore_slots(engine: Engine) -> list[tuple[int, int, float, int]]:
    with engine.connect() as c:
        return [
            tuple(r)  # type: ignore[misc]
            for r in c.execute(
                select(Message.subscriber_id, Slot.item_id, Slot.propensity, Slot.position)  # type: ignore[call-overload]
                .join(Message, Message.id == Slot.message_id)
                .where(Slot.source == "explore")
                .order_by(Message.subscriber_id)
            )
        ]


def test_popular_policy_fills_the_exploration_slot_with_the_top_item(engine: Engine) -> None:
    seed(engine)
    with engine.begin() as c:
        c.execute(
            update(campaign_table)
            .where(campaign_table.c.name == "weekly")
            .values(config={**NO_HOLDOUT, "exploration_policy": "popular"})
        )
    plan(engine)
    slots = _explore_slots(engine)
    assert slots, "the planned subscriber gets an exploration slot"
    for _subscriber, item, propensity, position in slots:
        assert item == 1  # item 1 has the most reads, and subscriber 1 read nothing
        assert propensity == 1.0 and position == 3  # deterministic, after the sections


def test_thompson_stays_the_default_and_unknown_policies_are_refused() -> None:
    assert parse_campaign_config({}, campaign="c").exploration_policy == "thompson"
    with pytest.raises(CampaignConfigError, match="exploration_policy"):
        parse_campaign_config({"exploration_policy": "random"}, campaign="c")


def test_fewer_readers_than_items_plans_with_because_you_read_anchors(
    sqlite_engine: Engine,
) -> None:
    """EASE solves in its dual form when readers are fewer than items; anchors still work."""
    from newsletter.config import Settings
    from newsletter.db import session_scope
    from newsletter.plan.planner import plan_run
    from newsletter.simulate.world import generate_world, world_now
    from newsletter.store.frames import load_frames

    now = world_now()
    world = generate_world(subscribers=60, items=400, interactions=3000, now=now)
    load_frames(sqlite_engine, frames=world.frames, now=now, origin="test")
    with session_scope(sqlite_engine) as s:
        s.add(Campaign(name="w", template_name="digest", config={}, created_at=now))
    result = plan_run(sqlite_engine, campaign="w", now=now, settings=Settings())
    assert result.stats["planned"] == 60
    with sqlite_engine.connect() as c:
        anchors = c.execute(
            select(Slot.reason_anchor).where(Slot.reason_kind == "because_you_read")  # type: ignore[call-overload]
        ).all()
    assert anchors and all(a[0] for a in anchors)
