"""The schedule and trigger commands with known answers: ``schedule list`` (cron in local
time, planned 15 hours ahead, sample zones across Europe's DST change), ``trigger test``
(fires, not yet, cancelled, unknown input) and ``trigger list`` (pending, then fired)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, insert, select
from trigger_world import NOW, SETTINGS, seed_shop
from typer.testing import CliRunner

from newsletter import pipeline
from newsletter.cli import app
from newsletter.db import make_engine, session_scope, upgrade
from newsletter.models import Campaign, Item, Subscriber
from newsletter.tables import interaction_table

CART = {"trigger": {"kind": "abandoned_cart", "delay_hours": 1}}


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Engine:
    engine = make_engine(f"sqlite:///{tmp_path / 'cli.db'}")
    upgrade(engine)
    monkeypatch.setenv("NEWSLETTER_DATABASE_URL", str(engine.url))
    monkeypatch.setenv("NEWSLETTER_CONFIG", str(tmp_path / "none.toml"))
    return engine


def run(*args: str) -> tuple[int, list[str]]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output.splitlines()


def test_schedule_list_shows_local_fire_times_and_sample_zones(database: Engine) -> None:
    with session_scope(database) as s:
        for name, schedule in (("weekly", "0 8 * * mon"), ("broken", "every monday")):
            s.add(Campaign(name=name, template_name="digest", schedule=schedule, created_at=NOW))
    code, lines = run("schedule", "list", "--count", "2", "--at", "2026-03-25T00:00")
    assert code == 0
    assert lines[0].startswith("broken: schedule 'every monday' is not a cron expression")
    assert lines[1:] == [
        "weekly (0 8 * * mon, local time)",
        "  Mon 2026-03-30 08:00 local; planned from 2026-03-29T17:00+00:00; "
        "Kiritimati Sun 18:00Z, Tokyo Sun 23:00Z, Paris Mon 06:00Z, New_York Mon 12:00Z",
        "  Mon 2026-04-06 08:00 local; planned from 2026-04-05T17:00+00:00; "
        "Kiritimati Sun 18:00Z, Tokyo Sun 23:00Z, Paris Mon 06:00Z, New_York Mon 12:00Z",
    ]
    code, lines = run("schedule", "list", "--count", "1", "--at", "2026-03-20T00:00")
    assert lines[2] == (  # before the DST change Paris is UTC+1
        "  Mon 2026-03-23 08:00 local; planned from 2026-03-22T17:00+00:00; "
        "Kiritimati Sun 18:00Z, Tokyo Sun 23:00Z, Paris Mon 07:00Z, New_York Mon 12:00Z"
    )
    code, lines = run("schedule", "list", "--at", "next monday")
    assert code == 2 and "--at 'next monday' is not an ISO time" in " ".join(lines)


def _cart_world(engine: Engine) -> tuple[int, int]:
    """s1 carted Jazz 1 at 10:00 on NOW's day; returns (s1's id, Jazz 1's id)."""
    seed_shop(engine, campaigns={"cart": dict(CART)})
    with engine.connect() as c:
        sid = c.execute(select(Subscriber.id).where(Subscriber.external_key == "s1")).scalar_one()  # type: ignore[call-overload,arg-type]
        item = c.execute(select(Item.id).where(Item.external_key == "jazz-1")).scalar_one()  # type: ignore[call-overload,arg-type]
    with engine.begin() as c:
        c.execute(
            insert(interaction_table).values(
                subscriber_id=sid, item_id=item, kind="cart", occurred_at=NOW - timedelta(hours=2)
            )
        )
    return int(sid), int(item)


def test_trigger_test_says_when_it_fires_with_which_items_or_why_not(database: Engine) -> None:
    _cart_world(database)
    code, lines = run("trigger", "test", "cart", "--subscriber", "s1", "--at", "2026-06-02T10:30")
    assert code == 0
    assert lines == [
        "Does not fire at 2026-06-02T10:30:00+00:00: no abandoned_cart condition is met.",
        "It would fire at 2026-06-02T11:00:00+00:00 (nothing cancels it by then).",
    ]
    code, lines = run(
        "trigger", "test", "cart", "--subscriber", "s1@example.com", "--at", "2026-06-02T12:00"
    )
    assert code == 0
    assert lines[:2] == [
        "Condition met: You left these behind (due 2026-06-02T11:00:00+00:00).",
        "Fires: personalized arm, sent at 2026-06-02T12:00:00+00:00.",
    ]
    assert lines[2] == "  1. [In your cart] Jazz 1 — In your cart since Tue 2 Jun, 10:00"
    similar = [line.split("] ", 1)[1] for line in lines[3:]]  # n_items = 4
    assert len(similar) == 3 and len({t.split(" — ")[0] for t in similar}) == 3
    assert all(t.startswith("Jazz ") and t.endswith(" — Similar to Jazz 1") for t in similar)
    code, lines = run("trigger", "test", "cart", "--subscriber", "s2", "--at", "2026-06-02T12:00")
    assert lines == [
        "Does not fire at 2026-06-02T12:00:00+00:00: no abandoned_cart condition is met."
    ]
    code, lines = run("trigger", "test", "cart", "--subscriber", "nobody")
    assert code == 2 and "--subscriber 'nobody': no subscriber" in " ".join(lines)
    code, lines = run("trigger", "test", "nope", "--subscriber", "s1")
    assert code == 2 and "nope" in " ".join(lines)


def test_trigger_test_a_purchase_within_the_hour_cancels(database: Engine) -> None:
    sid, item = _cart_world(database)
    with database.begin() as c:
        c.execute(
            insert(interaction_table).values(
                subscriber_id=sid,
                item_id=item,
                kind="purchase",
                occurred_at=NOW - timedelta(minutes=90),
            )
        )
    code, lines = run("trigger", "test", "cart", "--subscriber", "s1", "--at", "2026-06-02T12:00")
    assert (code, lines) == (
        0,
        ["Does not fire at 2026-06-02T12:00:00+00:00: no abandoned_cart condition is met."],
    )


def test_trigger_list_shows_pending_then_fired_states(database: Engine) -> None:
    sid, item = _cart_world(database)
    code, lines = run("trigger", "list")
    assert (code, lines) == (0, ["no pending trigger states"])
    pipeline.sweep_triggers(database, now=NOW - timedelta(minutes=90), settings=SETTINGS)
    dedupe = f"cart:{item}:{(NOW - timedelta(hours=2)).isoformat()}"
    code, lines = run("trigger", "list")
    assert lines == [
        f"cart subscriber {sid} abandoned_cart {dedupe}: pending due 2026-06-02T11:00+00:00"
    ]
    fired, _ = pipeline.sweep_triggers(database, now=NOW, settings=SETTINGS)
    code, lines = run("trigger", "list", "--status", "fired")
    assert lines == [
        f"cart subscriber {sid} abandoned_cart {dedupe}: fired due 2026-06-02T11:00+00:00 "
        f"run {fired[0].run_id}"
    ]
    assert run("trigger", "list")[1] == ["no pending trigger states"]
    assert run("trigger", "list", "--status", "all")[1] == lines
    code, lines = run("trigger", "list", "--status", "sent")
    assert code == 2 and "--status 'sent': expected pending, fired, cancelled or all" in lines[0]
