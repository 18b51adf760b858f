"""Tiny and degenerate data sets: every case plans and sends valid emails, or says why not.

A pilot with a handful of rows is what a new user tries first. Through the real CSV import,
planner and outbox delivery: 0 interactions, 1 subscriber, 1 item, items without topics,
images or summaries, subscribers without history, everybody's history identical, every item
expired. Each planned message fills every slot it can (the fallback is popular, then newest
items) with a reason; a subscriber gets no message only when no live item is left for them.
"""

from __future__ import annotations

import csv
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, func, select

from newsletter.config import Settings
from newsletter.db import make_engine, upgrade
from newsletter.models import Message, Run, Slot
from newsletter.pipeline import run_campaign
from newsletter.plan.planner import plan_run
from newsletter.store.campaigns import upsert_campaign
from newsletter.store.csv_import import import_csv
from testsupport import assert_valid_email

NOW = datetime(2026, 6, 1, 9, tzinfo=UTC)
N_ITEMS = 8  # the default campaign's slots per message


def write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@st.composite
def tiny_worlds(draw: st.DrawFn) -> dict[str, Any]:
    """1-5 subscribers, 1-8 items, 0-12 interactions and the degenerate switches."""
    subscribers = draw(st.integers(1, 5))
    items = draw(st.integers(1, 8))
    events = draw(
        st.lists(
            st.tuples(
                st.integers(0, subscribers - 1),
                st.integers(0, items - 1),
                st.sampled_from(["view", "read", "click", "purchase"]),
                st.integers(0, 40),
            ),
            max_size=12,
        )
    )
    return {
        "subscribers": subscribers,
        "items": items,
        "events": events,
        "topics": draw(st.booleans()),
        "images": draw(st.sampled_from(["none", "some", "all"])),
        "summaries": draw(st.booleans()),
        "expired": draw(st.booleans()),
        "identical": draw(st.booleans()),
        "ranker": draw(st.sampled_from(["hybrid", "collaborative", "popularity"])),
    }


def load(world: dict[str, Any], folder: Path) -> Engine:
    """Write the world as CSV files and import them into a new SQLite database."""
    n_subs, n_items = world["subscribers"], world["items"]
    subs = [[f"s{u}", f"s{u}@example.com", "Ann Example" if u % 2 else ""] for u in range(n_subs)]
    expires = (NOW - timedelta(days=1)).isoformat() if world["expired"] else ""
    items = [
        [
            f"i{i}",
            f"Item {i}",
            f"https://example.com/{i}",
            ("politics|sport" if i % 2 else "sport") if world["topics"] else "",
            ""
            if world["images"] == "none" or (world["images"] == "some" and i % 2)
            else "https://img.example.com/x.png",
            f"Summary {i}" if world["summaries"] else "",
            (NOW - timedelta(days=3 * i)).isoformat(),
            expires,
        ]
        for i in range(n_items)
    ]
    events = world["events"]
    if world["identical"]:  # everybody did what subscriber 0 did
        events = [(u, i, k, d) for u in range(n_subs) for (_, i, k, d) in events]
    rows = [
        [f"s{u}", f"i{i}", k, (NOW - timedelta(days=d, hours=1)).isoformat()]
        for u, i, k, d in events
    ]
    engine = make_engine(f"sqlite:///{folder / 'pilot.db'}")
    upgrade(engine)
    report = import_csv(
        engine,
        subscribers=write_csv(folder / "s.csv", ["subscriber_key", "email", "name"], subs),
        items=write_csv(
            folder / "i.csv",
            [
                "item_key",
                "title",
                "url",
                "topics",
                "image_url",
                "summary",
                "published_at",
                "expires_at",
            ],
            items,
        ),
        interactions=write_csv(
            folder / "x.csv", ["subscriber_key", "item_key", "kind", "occurred_at"], rows
        ),
        now=NOW,
    )
    assert report.rejected == []
    upsert_campaign(
        engine,
        name="weekly",
        template_name="digest",
        segment_name="everyone",
        config={"ranker": world["ranker"]},
        now=NOW,
    )
    return engine


def unseen_live_items(world: dict[str, Any]) -> dict[int, int]:
    """Per subscriber index: how many live items they have not consumed."""
    if world["expired"]:
        return dict.fromkeys(range(world["subscribers"]), 0)
    events = world["events"]
    consumed: dict[int, set[int]] = {u: set() for u in range(world["subscribers"])}
    for u, i, _, _ in events:
        for who in range(world["subscribers"]) if world["identical"] else [u]:
            consumed[who].add(i)
    return {u: world["items"] - len(seen) for u, seen in consumed.items()}


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(world=tiny_worlds())
def test_tiny_worlds_plan_and_send_valid_emails_or_say_why_not(world: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        engine = load(world, folder)
        summary = run_campaign(
            engine,
            campaign="weekly",
            now=NOW,
            settings=Settings(),
            transport_url=f"outbox:{folder / 'out'}",
        )
        with engine.connect() as c:
            runs = c.execute(select(Run.status)).scalars().all()  # type: ignore[call-overload]
            messages = c.execute(
                select(Message.subscriber_id, Message.status, Message.reason, Message.arm)  # type: ignore[call-overload]
            ).all()
            slots = dict(
                c.execute(
                    select(Slot.message_id, func.count()).group_by(Slot.message_id)  # type: ignore[call-overload]
                ).all()
            )
            reasons = c.execute(select(Slot.reason_text)).scalars().all()  # type: ignore[call-overload]
            ids = dict(c.execute(select(Message.subscriber_id, Message.id)).all())  # type: ignore[call-overload]
        engine.dispose()
        assert runs == ["delivered"]
        left = unseen_live_items(world)
        for subscriber_id, status, reason, arm in messages:
            available = left[subscriber_id - 1]  # ids follow the CSV order from 1
            if arm == "control":
                continue
            if available == 0:
                assert (status, reason) == ("skipped", "no_items")
            else:
                assert status == "sent", (status, reason)
                assert slots[ids[subscriber_id]] == min(N_ITEMS, available)
        assert all(text.strip() for text in reasons)
        outbox = sorted((folder / "out").glob("*.eml")) if (folder / "out").exists() else []
        assert len(outbox) == summary.counts.by_status.get("sent", 0)
        for path in outbox:
            assert_valid_email(path.read_bytes())


def test_a_failed_plan_leaves_no_run_behind(tmp_path: Path) -> None:
    engine = load(
        {
            "subscribers": 3,
            "items": 4,
            "events": [(0, 0, "read", 1), (0, 1, "read", 2), (1, 2, "click", 1)],
            "topics": True,
            "images": "none",
            "summaries": True,
            "expired": False,
            "identical": False,
            "ranker": "hybrid",
        },
        tmp_path,
    )

    def broken(*_: Any) -> Any:
        raise RuntimeError("the model could not be fitted")

    with pytest.raises(RuntimeError, match="could not be fitted"):
        plan_run(engine, campaign="weekly", now=NOW, settings=Settings(), source_factory=broken)
    with engine.connect() as c:
        assert c.execute(select(func.count()).select_from(Run)).scalar_one() == 0
        assert c.execute(select(func.count()).select_from(Message)).scalar_one() == 0
    result = plan_run(engine, campaign="weekly", now=NOW, settings=Settings())
    assert result.stats["planned"] == 3 and result.new_messages == 3
    engine.dispose()
