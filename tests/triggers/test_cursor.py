"""The trigger engine's cursors: rows that commit late below the cursor are still evaluated
(once), and clicks recorded by the tracking service feed "More on <topic>"."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine, insert, select
from trigger_world import LOOSE, NOW, SETTINGS, seed_shop

from newsletter import pipeline
from newsletter.db import session_scope
from newsletter.models import Campaign, Item, Message, Run, Slot, Subscriber
from newsletter.store import trigger_cursor
from newsletter.store.triggers import states
from newsletter.tables import interaction_table, slot_table
from newsletter.track.record import record_click
from newsletter.triggers import cursor
from newsletter.triggers.engine import evaluate

BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36"


def test_missing_and_subtract_and_coarsen_have_known_answers() -> None:
    assert cursor.missing(10, [11, 14, 15, 20]) == [(12, 13), (16, 19)]
    assert cursor.missing(0, []) == []
    assert cursor.subtract((12, 19), [12, 15, 30]) == [(13, 14), (16, 19)]
    assert cursor.subtract((5, 5), [5]) == []
    seen = [((k * 10, k * 10 + 1), NOW + timedelta(minutes=k)) for k in range(5)]
    assert cursor.coarsen(seen, 2) == [((0, 31), NOW), ((40, 41), NOW + timedelta(minutes=4))]


def _ids(engine: Engine) -> dict[str, int]:
    with engine.connect() as c:
        rows = c.execute(select(Subscriber.external_key, Subscriber.id)).all()  # type: ignore[call-overload]
        items = c.execute(select(Item.external_key, Item.id)).all()  # type: ignore[call-overload]
    return {str(k): int(v) for k, v in [*rows, *items]}


def _cart(key: int | None, sid: int, item: int, minutes_ago: int) -> dict[str, object]:
    row = {
        "subscriber_id": sid,
        "item_id": item,
        "kind": "cart",
        "occurred_at": NOW - timedelta(minutes=minutes_ago),
        "source": "events",
    }
    return row if key is None else {"id": key, **row}


def _carted(engine: Engine) -> list[int]:
    return sorted(s.subscriber_id for s in states(engine, status="pending"))


def _late_world(engine: Engine) -> dict[str, int]:
    """s1's cart stored with id 100 and evaluated, then s2's with id 50: id 50 was taken
    from the sequence before 100, but its transaction commits only after the evaluation."""
    seed_shop(engine, campaigns={"cart": {"trigger": {"kind": "abandoned_cart"}}})
    ids = _ids(engine)
    table = interaction_table
    with engine.begin() as c:
        c.execute(insert(table).values(_cart(100, ids["s1"], ids["jazz-1"], 10)))
    evaluate(engine, now=NOW)
    assert _carted(engine) == [ids["s1"]]
    assert trigger_cursor.cursor(engine, entity="interaction") == 100
    with engine.begin() as c:
        c.execute(insert(table).values(_cart(50, ids["s2"], ids["jazz-2"], 5)))
    return ids


def test_a_lower_id_committed_after_a_higher_one_is_evaluated_once(engine: Engine) -> None:
    ids = _late_world(engine)
    second = evaluate(engine, now=NOW + timedelta(minutes=1))
    assert _carted(engine) == [ids["s1"], ids["s2"]]
    assert second.interactions == 1
    gaps = [g for g, _ in trigger_cursor.open_gaps(engine, entity="interaction")]
    assert (50, 50) not in gaps and any(lo <= 51 <= hi for lo, hi in gaps)
    third = evaluate(engine, now=NOW + timedelta(minutes=2))
    assert (third.interactions, third.states) == (0, 0)
    assert len(states(engine, status="pending")) == 2


def test_a_gap_older_than_the_grace_is_forgotten(sqlite_engine: Engine) -> None:
    ids = _late_world(sqlite_engine)
    evaluate(sqlite_engine, now=NOW + cursor.GAP_GRACE + timedelta(minutes=1))
    assert _carted(sqlite_engine) == [ids["s1"]]
    assert trigger_cursor.open_gaps(sqlite_engine, entity="interaction") == []


@pytest.mark.postgres
def test_concurrent_transactions_committing_out_of_order(pg_engine: Engine) -> None:
    """Two real transactions: the one with the lower id commits after an evaluation."""
    seed_shop(pg_engine, campaigns={"cart": {"trigger": {"kind": "abandoned_cart"}}})
    ids = _ids(pg_engine)
    table = interaction_table
    slow = pg_engine.connect()
    try:
        transaction = slow.begin()
        low = slow.execute(insert(table).values(_cart(None, ids["s1"], ids["jazz-1"], 10)))
        with pg_engine.begin() as c:
            high = c.execute(insert(table).values(_cart(None, ids["s2"], ids["jazz-2"], 5)))
        assert low.inserted_primary_key[0] < high.inserted_primary_key[0]
        evaluate(pg_engine, now=NOW)
        assert _carted(pg_engine) == [ids["s2"]]
        transaction.commit()
    finally:
        slow.close()
    evaluate(pg_engine, now=NOW + timedelta(minutes=1))
    assert _carted(pg_engine) == [ids["s1"], ids["s2"]]


def _sent_digest(engine: Engine, sid: int, items: list[int]) -> int:
    """A digest message sent to `sid` two hours before NOW, one slot per item."""
    with session_scope(engine) as s:
        campaign = Campaign(name="weekly", template_name="digest", created_at=NOW)
        s.add(campaign)
        s.flush()
        assert campaign.id is not None
        run = Run(campaign_id=campaign.id, scheduled_for=NOW, status="done", created_at=NOW)
        s.add(run)
        s.flush()
        assert run.id is not None
        sent = NOW - timedelta(hours=2)
        message = Message(
            run_id=run.id,
            subscriber_id=sid,
            status="sent",
            planned_for=sent,
            sent_at=sent,
            updated_at=sent,
        )
        s.add(message)
        s.flush()
        assert message.id is not None
        for position, item in enumerate(items):
            s.add(
                Slot(
                    message_id=message.id,
                    position=position,
                    item_id=item,
                    source="popularity",
                    score=1.0,
                    propensity=1.0,
                    reason_kind="popular",
                    reason_text="Popular",
                )
            )
        return message.id


def test_clicks_recorded_by_tracking_fire_more_on_topic(engine: Engine) -> None:
    rule = {"trigger": {"kind": "topic_reads", "min_reads": 3}, "cadence": LOOSE}
    seed_shop(engine, campaigns={"topic": rule})
    ids = _ids(engine)
    message = _sent_digest(engine, ids["s1"], [ids[f"rock-{k}"] for k in (1, 2, 3)])
    pipeline.sweep_triggers(engine, now=NOW - timedelta(hours=1), settings=SETTINGS)
    for slot in (0, 1):  # two human clicks, minutes apart: not yet three reads
        at = NOW - timedelta(minutes=30 - 10 * slot)
        assert record_click(
            engine,
            message_id=message,
            slot=slot,
            url=None,
            user_agent=BROWSER,
            ip="203.0.113.9",
            now=at,
        )
    fired, _ = pipeline.sweep_triggers(engine, now=NOW - timedelta(minutes=5), settings=SETTINGS)
    assert fired == [] and states(engine) == []
    assert record_click(
        engine, message_id=message, slot=2, url=None, user_agent=BROWSER, ip="203.0.113.9", now=NOW
    )
    fired, errors = pipeline.sweep_triggers(engine, now=NOW, settings=SETTINGS)
    assert errors == []
    assert [(f.campaign, f.planned) for f in fired] == [("topic", 1)]
    (state,) = states(engine)
    assert (state.subscriber_id, state.context["topic"]) == (ids["s1"], "rock")
    assert state.context["label"] == "More on rock"
    sl = slot_table.c
    with engine.connect() as c:
        reasons = c.execute(select(sl.reason_text).where(sl.message_id != message)).scalars()
        assert set(reasons) == {"Because you read Rock 1, Rock 2 and Rock 3"}


def test_one_evaluation_catches_up_a_backlog_in_bounded_passes(sqlite_engine: Engine) -> None:
    seed_shop(sqlite_engine, campaigns={"cart": {"trigger": {"kind": "abandoned_cart"}}})
    ids = _ids(sqlite_engine)
    evaluate(sqlite_engine, now=NOW)  # the shop's own history: nothing recent
    table = interaction_table
    with sqlite_engine.begin() as c:
        for k in range(1, 6):
            c.execute(insert(table).values(_cart(None, ids[f"s{k}"], ids["jazz-1"], k)))
    first = evaluate(sqlite_engine, now=NOW, limit=2, passes=2)
    assert (first.interactions, first.states) == (4, 4)
    second = evaluate(sqlite_engine, now=NOW, limit=2)
    assert (second.interactions, second.states) == (1, 1)
    assert len(_carted(sqlite_engine)) == 5
