"""A small shop for trigger tests: subscribers, items in two topics, three trigger campaigns."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from newsletter.config import Settings
from newsletter.db import session_scope
from newsletter.models import Campaign, Interaction, Item, ItemTopic, Subscriber

NOW = datetime(2026, 6, 2, 12, 0, tzinfo=UTC)  # a Tuesday, noon UTC: outside quiet hours
SETTINGS = Settings(smtp_url="memory:")
NO_ARMS = {"popular": 0.0, "control": 0.0}
LOOSE = {"max_per_day": 5, "max_per_7_days": 20, "min_gap_hours": 0}


def seed_shop(engine: Engine, *, campaigns: dict[str, dict[str, Any]]) -> None:
    """Five subscribers s1..s5 (UTC), items jazz-1..6 and rock-1..6, old reads by s5 so
    popularity has signal, and the given trigger campaigns (name -> config)."""
    with session_scope(engine) as s:
        for k in range(1, 6):
            s.add(
                Subscriber(
                    external_key=f"s{k}",
                    email=f"s{k}@example.com",
                    topics=["jazz"],
                    created_at=NOW - timedelta(days=30),
                    updated_at=NOW - timedelta(days=30),
                )
            )
        for topic in ("jazz", "rock"):
            for k in range(1, 7):
                s.add(
                    Item(
                        external_key=f"{topic}-{k}",
                        title=f"{topic.title()} {k}",
                        url=f"https://example.com/{topic}/{k}",
                        topics=[topic],
                        published_at=NOW - timedelta(days=k),
                        updated_at=NOW - timedelta(days=k),
                    )
                )
        s.flush()
        for item in s.query(Item).all():
            s.add(ItemTopic(item_id=item.id, topic=item.topics[0]))
        s5 = s.query(Subscriber).filter_by(external_key="s5").one()
        for item in s.query(Item).all():
            s.add(
                Interaction(
                    subscriber_id=s5.id,
                    item_id=item.id,
                    kind="view",
                    occurred_at=NOW - timedelta(days=20),
                )
            )
        for name, config in campaigns.items():
            s.add(
                Campaign(
                    name=name,
                    kind="trigger",
                    template_name=config.pop("template", "trigger"),
                    config={"ranker": "popularity", "n_items": 4, "arms": NO_ARMS, **config},
                    created_at=NOW - timedelta(days=30),
                )
            )


def event(subscriber: str, item: str, kind: str, at: datetime) -> dict[str, Any]:
    return {
        "subscriber_key": subscriber,
        "item_key": item,
        "kind": kind,
        "occurred_at": at.isoformat(),
    }
