"""The three shipped triggers fire on the right behaviour and not on the wrong one, honour
their cooldown and the daily cap, and explain their items (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine, select, update
from trigger_world import LOOSE, NOW, SETTINGS, event, seed_shop

from newsletter import pipeline
from newsletter.models import Subscriber, TriggerState
from newsletter.plan.campaigns import CampaignConfigError, parse_campaign_config
from newsletter.plan.why import why
from newsletter.store.triggers import states
from newsletter.tables import item_table, message_table, slot_table

CART = {"trigger": {"kind": "abandoned_cart", "delay_hours": 1}, "cadence": LOOSE}
TOPIC = {"trigger": {"kind": "topic_reads", "min_reads": 3}, "cadence": LOOSE}
WELCOME = {"trigger": {"kind": "welcome", "steps_days": [0, 3]}, "cadence": LOOSE}


def _messages(engine: Engine) -> list[tuple[int, str, str | None, int]]:
    m = message_table.c
    with engine.connect() as c:
        rows = c.execute(select(m.subscriber_id, m.status, m.reason, m.id).order_by(m.id))
        return [(int(a), str(b), c_, int(d)) for a, b, c_, d in rows]


def _slots(engine: Engine, message_id: int) -> list[tuple[str, str]]:

    s = slot_table.c
    i = item_table.c
    with engine.connect() as c:
        rows = c.execute(
            select(i.external_key, s.reason_text)
            .join(item_table, i.id == s.item_id)
            .where(s.message_id == message_id)
            .order_by(s.position)
        )
        return [(str(k), str(t)) for k, t in rows]


def _sid(engine: Engine, key: str) -> int:
    with engine.connect() as c:
        return int(
            c.execute(select(Subscriber.id).where(Subscriber.external_key == key)).scalar_one()  # type: ignore[call-overload,arg-type]
        )


def _start(engine: Engine, campaigns: dict) -> None:
    seed_shop(engine, campaigns={k: dict(v) for k, v in campaigns.items()})
    pipeline.sweep_triggers(engine, now=NOW - timedelta(hours=2), settings=SETTINGS)


def test_cart_fires_after_the_hour_and_a_purchase_cancels_it(engine: Engine) -> None:
    _start(engine, {"cart": CART})
    t0 = NOW - timedelta(hours=1, minutes=30)
    pipeline.record_events(
        engine,
        events=[
            event("s1", "jazz-2", "cart", t0),
            event("s2", "jazz-2", "cart", t0),
            event("s2", "jazz-2", "purchase", t0 + timedelta(minutes=20)),
        ],
        now=t0,
        settings=SETTINGS,
    )
    early, _ = pipeline.sweep_triggers(engine, now=t0 + timedelta(minutes=59), settings=SETTINGS)
    assert early == [] and _messages(engine) == []
    fired, errors = pipeline.sweep_triggers(engine, now=NOW, settings=SETTINGS)
    assert errors == [] and len(fired) == 1 and fired[0].planned == 1
    [(sid, status, _, mid)] = _messages(engine)
    assert sid == _sid(engine, "s1") and status == "planned"
    slots = _slots(engine, mid)
    assert slots[0] == ("jazz-2", "In your cart since Tue 2 Jun, 10:30")
    assert all(text == "Similar to Jazz 2" for _, text in slots[1:]) and len(slots) == 4
    assert {k for k, _ in slots[1:]} <= {f"jazz-{k}" for k in range(1, 7)}
    cancelled = states(engine, status="cancelled")
    assert [(s.subscriber_id, s.reason) for s in cancelled] == [(_sid(engine, "s2"), "purchased")]
    again, _ = pipeline.sweep_triggers(engine, now=NOW + timedelta(minutes=1), settings=SETTINGS)
    assert again == []  # a fired state never fires twice


def test_a_purchase_after_the_hour_does_not_cancel(engine: Engine) -> None:
    _start(engine, {"cart": CART})
    t0 = NOW - timedelta(hours=3)
    pipeline.record_events(
        engine,
        events=[event("s1", "rock-1", "cart", t0), event("s1", "rock-1", "purchase", NOW)],
        now=NOW,
        settings=SETTINGS,
    )
    fired, _ = pipeline.sweep_triggers(engine, now=NOW, settings=SETTINGS)
    assert [f.planned for f in fired] == [1]


def test_three_reads_in_a_topic_fire_more_on_topic_two_do_not(engine: Engine) -> None:
    _start(engine, {"topic": TOPIC})
    reads = [event("s1", f"rock-{k}", "read", NOW - timedelta(hours=5 - k)) for k in (1, 2, 3)]
    reads += [event("s2", f"rock-{k}", "read", NOW - timedelta(hours=5 - k)) for k in (1, 2)]
    reads += [event("s3", "jazz-1", "read", NOW - timedelta(hours=30))]  # outside 24 h
    reads += [event("s3", f"jazz-{k}", "read", NOW - timedelta(hours=1)) for k in (2, 3)]
    pipeline.record_events(engine, events=reads, now=NOW, settings=SETTINGS)
    fired, _ = pipeline.sweep_triggers(engine, now=NOW, settings=SETTINGS)
    assert [f.planned for f in fired] == [1]
    [(sid, _, _, mid)] = _messages(engine)
    assert sid == _sid(engine, "s1")
    slots = _slots(engine, mid)
    assert {k for k, _ in slots} == {"rock-4", "rock-5", "rock-6"}  # the unread rock items
    assert {t for _, t in slots} == {"Because you read Rock 1, Rock 2 and Rock 3"}


def test_welcome_day_zero_then_day_three_only_while_active(engine: Engine) -> None:
    _start(engine, {"welcome": WELCOME})
    from newsletter.db import session_scope

    with session_scope(engine) as s:
        for key in ("new1", "new2"):
            s.add(
                Subscriber(
                    external_key=key,
                    email=f"{key}@example.com",
                    topics=["rock"],
                    created_at=NOW,
                    updated_at=NOW,
                )
            )
    day0, _ = pipeline.sweep_triggers(engine, now=NOW, settings=SETTINGS)
    assert [f.planned for f in day0] == [2]
    mid = _messages(engine)[0][3]
    slots = _slots(engine, mid)
    assert {t for _, t in slots} == {"Popular with readers this week", "Popular in rock"}
    assert sum(k.startswith("rock") for k, _ in slots) >= 2
    with engine.begin() as c:
        c.execute(
            update(Subscriber)
            .where(Subscriber.external_key == "new2")
            .values(status="unsubscribed")  # type: ignore[arg-type]
        )
    day3, _ = pipeline.sweep_triggers(engine, now=NOW + timedelta(days=3), settings=SETTINGS)
    assert day3[0].planned == 1 and day3[0].skipped == {"unsubscribed": 1}


def test_cooldown_and_daily_cap_suppress_and_why_says_so(engine: Engine) -> None:
    cooled = {**CART, "trigger": {"kind": "abandoned_cart", "cooldown_hours": 24}}
    capped = {
        "trigger": {"kind": "abandoned_cart", "cooldown_hours": 0},
        "cadence": {"max_per_day": 1, "min_gap_hours": 0},
    }
    _start(engine, {"cooled": cooled, "capped": capped})
    first = NOW - timedelta(hours=4)
    pipeline.record_events(
        engine, events=[event("s1", "jazz-1", "cart", first)], now=first, settings=SETTINGS
    )
    fired, _ = pipeline.sweep_triggers(engine, now=first + timedelta(hours=1), settings=SETTINGS)
    # both campaigns fire for s1 at the same time: the shared daily cap lets one through
    outcomes = sorted((f.campaign, f.planned, tuple(f.skipped)) for f in fired)
    assert outcomes == [("capped", 0, ("frequency_cap_day",)), ("cooled", 1, ())]
    pipeline.record_events(
        engine, events=[event("s1", "jazz-3", "cart", NOW)], now=NOW, settings=SETTINGS
    )
    later, _ = pipeline.sweep_triggers(engine, now=NOW + timedelta(hours=1), settings=SETTINGS)
    cooled_run = next(f for f in later if f.campaign == "cooled")
    assert cooled_run.skipped == {"trigger_cooldown": 1}
    answer = why(engine, subscriber="s1", campaign="cooled")
    assert answer.outcome == "skipped" and answer.reason == "trigger_cooldown"
    assert "less than 24 hours ago" in answer.summary
    capped_answer = why(engine, subscriber="s1", campaign="capped")
    assert capped_answer.reason in {"frequency_cap_day", None}


def test_fire_trigger_answers_one_subscriber_and_delivers(engine: Engine) -> None:
    _start(engine, {"topic": TOPIC})
    for k in (1, 2):
        pipeline.record_events(
            engine, events=[event("s4", f"jazz-{k}", "read", NOW)], now=NOW, settings=SETTINGS
        )
    summary = pipeline.fire_trigger(
        engine,
        campaign="topic",
        subscriber_id=_sid(engine, "s4"),
        now=NOW,
        settings=SETTINGS,
        event=event("s4", "jazz-3", "read", NOW),
    )
    assert summary is not None and summary.result.sent == 1
    with engine.connect() as c:
        assert c.execute(select(TriggerState.status)).scalars().all() == ["fired"]  # type: ignore[call-overload]


def test_bad_trigger_rules_get_a_clear_error() -> None:
    with pytest.raises(CampaignConfigError, match=r"trigger.kind"):
        parse_campaign_config({"trigger": {"kind": "birthday"}}, campaign="x")
    with pytest.raises(CampaignConfigError, match="steps_days"):
        parse_campaign_config({"trigger": {"kind": "welcome", "steps_days": [3, 0]}}, campaign="x")
