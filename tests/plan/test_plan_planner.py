"""plan_run and why on small explicit data, on SQLite and PostgreSQL, with known answers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from newsletter.config import Settings
from newsletter.db import session_scope
from newsletter.models import (
    Assignment,
    Campaign,
    Event,
    Interaction,
    Item,
    Message,
    Run,
    Segment,
    Slot,
    Subscriber,
    Suppression,
)
from newsletter.plan.planner import plan_run
from newsletter.plan.sources import popularity_slot_source
from newsletter.plan.why import why

NOW = datetime(2026, 6, 1, 5, 0, tzinfo=UTC)  # a Monday, before the 08:00 send hour
SETTINGS = Settings()
NO_HOLDOUT = {
    "arms": {"popular": 0.0},
    "exploration_share": 0.25,
    "n_items": 4,
    "sections": [
        {"title": "Top picks", "kind": "top_picks", "count": 2},
        {"title": "Trending", "kind": "trending", "count": 2},
    ],
}


def seed(engine: Engine) -> None:
    """Six subscribers: planned, capped, suppressed, paused, unsubscribed, late-night trigger."""
    with session_scope(engine) as s:
        s.add(
            Segment(name="all-known", definition="rule: {not: {status: nobody}}\n", updated_at=NOW)
        )
        for i, (status, freq) in enumerate(
            [
                ("active", "weekly"),
                ("active", "weekly"),
                ("active", "weekly"),
                ("active", "paused"),
                ("unsubscribed", "weekly"),
                ("active", "weekly"),
            ],
            start=1,
        ):
            s.add(
                Subscriber(
                    id=i,
                    email=f"s{i}@x.org",
                    status=status,
                    frequency=freq,
                    created_at=NOW - timedelta(days=90),
                    updated_at=NOW,
                )
            )
        for j in range(1, 13):
            s.add(
                Item(
                    id=j,
                    external_key=f"i{j}",
                    title=f"Item {j}",
                    url=f"u{j}",
                    topics=["t"],
                    published_at=NOW - timedelta(days=j),
                    updated_at=NOW,
                )
            )
        s.flush()
        for j in range(1, 13):
            for k in range(13 - j):  # item 1 is the most popular
                s.add(
                    Interaction(
                        subscriber_id=4 + k % 2,
                        item_id=j,
                        kind="read",
                        occurred_at=NOW - timedelta(hours=k + 1),
                    )
                )
        s.add(Suppression(email="s3@x.org", reason="complained", created_at=NOW))
        s.add(
            Campaign(
                id=1,
                name="weekly",
                template_name="digest",
                segment_name="all-known",
                config=NO_HOLDOUT,
                created_at=NOW,
            )
        )
        s.add(Campaign(id=2, name="old", template_name="digest", created_at=NOW))
        s.flush()
        for d in (2, 3, 4):  # subscriber 2 got three messages this week: capped
            s.add(
                Run(id=50 + d, campaign_id=2, scheduled_for=NOW - timedelta(days=d), created_at=NOW)
            )
            s.flush()
            s.add(
                Message(
                    run_id=50 + d,
                    subscriber_id=2,
                    status="sent",
                    planned_for=NOW,
                    sent_at=NOW - timedelta(days=d),
                    updated_at=NOW,
                )
            )


def plan(engine: Engine, campaign: str = "weekly", **kw: object) -> object:
    return plan_run(
        engine,
        campaign=campaign,
        now=NOW,
        settings=SETTINGS,
        source_factory=popularity_slot_source,
        **kw,
    )  # type: ignore[arg-type]


def test_plan_counts_every_subscriber_with_a_reason(engine: Engine) -> None:
    seed(engine)
    result = plan(engine)
    assert result.stats["segment"] == 6  # type: ignore[attr-defined]
    assert result.stats["arms"] == {"personalized": 2}  # type: ignore[attr-defined]
    assert result.stats["skipped"] == {  # type: ignore[attr-defined]
        "frequency_cap_7d": 1,
        "paused": 1,
        "suppressed": 1,
        "unsubscribed": 1,
    }
    with session_scope(engine) as s:
        run = s.exec(select(Run).where(Run.campaign_id == 1)).one()[0]  # type: ignore[call-overload,arg-type]
        assert run.status == "planned" and run.stats["planned"] == 2
        message = s.exec(
            select(Message).where(
                Message.subscriber_id == 1,  # type: ignore[call-overload,arg-type]
                Message.run_id == run.id,
            )
        ).one()[0]
        assert message.planned_for == datetime(2026, 6, 1, 8, tzinfo=UTC)
        slots = s.exec(select(Slot).where(Slot.message_id == message.id)).all()  # type: ignore[call-overload,arg-type]
        slots = [row[0] for row in slots]
    assert len(slots) == 4 and len({sl.item_id for sl in slots}) == 4
    assert sum(sl.source == "explore" for sl in slots) == 1  # 25% of 4 slots
    assert all(0 < sl.propensity <= 1 for sl in slots)


def _count(engine: Engine, model: type) -> int:
    with engine.connect() as c:
        return int(c.execute(select(func.count()).select_from(model)).scalar_one())


def test_planning_again_inserts_nothing_new(engine: Engine) -> None:
    seed(engine)
    first = plan(engine, shard_count=3)
    before = (_count(engine, Message), _count(engine, Slot), _count(engine, Assignment))
    again = plan(engine, shard_count=3)
    assert again.new_messages == 0 and first.new_messages == 6  # type: ignore[attr-defined]
    assert (_count(engine, Message), _count(engine, Slot), _count(engine, Assignment)) == before
    assert again.stats == first.stats  # type: ignore[attr-defined]
    with engine.connect() as c:
        shards = c.execute(
            select(Message.subscriber_id, Message.shard).where(Message.run_id < 50)
        ).all()  # type: ignore[call-overload,arg-type]
    assert all(shard == sid % 3 for sid, shard in shards)


def test_recorded_assignment_is_sticky_and_control_gets_nothing(engine: Engine) -> None:
    seed(engine)
    with session_scope(engine) as s:
        s.add(
            Assignment(
                experiment="arms:newsletter-arms-v1",
                subscriber_id=1,
                arm="popular",
                assigned_at=NOW,
            )
        )
        s.add(
            Assignment(
                experiment="arms:newsletter-arms-v1",
                subscriber_id=6,
                arm="control",
                assigned_at=NOW,
            )
        )
    result = plan(engine)
    assert result.stats["arms"] == {"popular": 1}  # type: ignore[attr-defined]
    assert result.stats["skipped"]["control_arm"] == 1  # type: ignore[attr-defined]
    answer = why(engine, subscriber="1", campaign="weekly")
    assert answer.arm == "popular" and all(s.source == "popularity" for s in answer.slots)
    assert [s.item_id for s in answer.slots] == [1, 2, 3, 4]  # the popularity ranking


def test_why_answers_planned_capped_deferred_and_suppressed(engine: Engine) -> None:
    seed(engine)
    with session_scope(engine) as s:
        s.add(
            Campaign(
                id=3,
                name="nudge",
                kind="trigger",
                template_name="t",
                segment_name="all-known",
                config=NO_HOLDOUT,
                created_at=NOW,
            )
        )
    plan(engine)
    planned = why(engine, subscriber="s1@x.org", campaign="weekly", at=NOW)
    assert planned.outcome == "planned" and planned.arm == "personalized"
    assert len(planned.slots) == 4 and all(s.reason for s in planned.slots)
    capped = why(engine, subscriber="2", campaign="weekly")
    assert capped.outcome == "skipped" and capped.reason == "frequency_cap_7d"
    assert len(capped.other_messages) == 3 and "3 messages per 7 days" in capped.summary
    suppressed = why(engine, subscriber="3", campaign="weekly")
    assert suppressed.reason == "suppressed" and "suppression list" in suppressed.summary
    late = datetime(2026, 6, 1, 22, 30, tzinfo=UTC)  # 22:30 UTC: quiet hours for a UTC reader
    plan_run(
        engine, campaign="nudge", now=late, settings=SETTINGS, source_factory=popularity_slot_source
    )
    deferred = why(engine, subscriber="6", campaign="nudge")
    assert deferred.outcome == "deferred" and deferred.reason == "quiet_hours_deferred"
    assert deferred.planned_for == datetime(2026, 6, 2, 8, tzinfo=UTC)
    assert why(engine, subscriber="6", campaign="nudge", at=NOW).outcome == "no_run"


def test_why_outside_the_segment(sqlite_engine: Engine) -> None:
    seed(sqlite_engine)
    with session_scope(sqlite_engine) as s:
        s.add(
            Campaign(
                name="fresh", template_name="d", segment_name="new-subscribers", created_at=NOW
            )
        )
    plan(sqlite_engine, campaign="fresh")
    answer = why(sqlite_engine, subscriber="1", campaign="fresh")
    assert answer.outcome == "not_in_segment"
    assert "not in segment 'new-subscribers'" in answer.summary


def test_why_says_an_unsubscribed_reader_unsubscribed_and_when(sqlite_engine: Engine) -> None:
    seed(sqlite_engine)
    with session_scope(sqlite_engine) as s:
        s.add(Campaign(name="actives", template_name="d", segment_name="everyone", created_at=NOW))
        s.add(
            Event(subscriber_id=5, kind="unsubscribe", occurred_at=datetime(2026, 5, 3, tzinfo=UTC))
        )
    plan(sqlite_engine, campaign="actives")
    answer = why(sqlite_engine, subscriber="5", campaign="actives")
    assert (answer.outcome, answer.reason) == ("skipped", "unsubscribed")
    assert answer.summary == f"Not sent in run {answer.run_id}: they unsubscribed on 3 May 2026."


@pytest.mark.parametrize("share", [0.0, 0.15, 0.5])
def test_exploration_share_propensities_and_no_repeats_with_the_hybrid(
    sqlite_engine: Engine, share: float
) -> None:
    from newsletter.simulate.world import generate_world, world_now
    from newsletter.store.frames import load_frames

    now = world_now()
    world = generate_world(subscribers=300, items=200, interactions=6000, now=now)
    load_frames(sqlite_engine, frames=world.frames, now=now, origin="test")
    with session_scope(sqlite_engine) as s:
        s.add(
            Campaign(
                name="w", template_name="d", config={"exploration_share": share}, created_at=now
            )
        )
    plan_run(sqlite_engine, campaign="w", now=now, settings=SETTINGS)
    with sqlite_engine.connect() as c:
        rows = c.execute(
            select(
                Slot.message_id,
                Slot.item_id,
                Slot.source,
                Slot.propensity,  # type: ignore[call-overload]
                Message.arm,
            ).join(Message, Message.id == Slot.message_id)
        ).all()  # type: ignore[arg-type]
    per: dict[int, list[tuple[int, str, float, str]]] = {}
    for mid, item, source, prop, arm in rows:
        per.setdefault(mid, []).append((item, source, prop, arm))
    target = share * 8
    for slots in per.values():
        assert len(slots) == 8 and len({s[0] for s in slots}) == 8
        assert all(0 < s[2] <= 1 for s in slots)
        explored = sum(s[1] == "explore" for s in slots)
        if slots[0][3] == "personalized":
            assert abs(explored - target) < 1
        else:
            assert explored == 0


def test_worker_processes_plan_the_same_run(sqlite_engine: Engine) -> None:
    from newsletter.pipeline import create_run
    from newsletter.pipeline import plan_run as plan_on
    from newsletter.tasks import ProcessPool

    def plan_in_processes() -> object:
        prepared = create_run(
            sqlite_engine,
            campaign="weekly",
            now=NOW,
            settings=SETTINGS,
            shard_count=3,
            source_factory=popularity_slot_source,
        )
        return plan_on(
            sqlite_engine,
            run_id=prepared.run_id,
            now=NOW,
            executor=ProcessPool(2),
            settings=SETTINGS,
        )

    seed(sqlite_engine)
    result = plan_in_processes()
    assert result.new_messages == 6 and result.stats["arms"] == {"personalized": 2}  # type: ignore[attr-defined]
    assert plan_in_processes().new_messages == 0  # type: ignore[attr-defined]
    assert _count(sqlite_engine, Slot) == 8


def test_shards_computed_elsewhere_are_written_in_shard_order(
    sqlite_engine: Engine, tmp_path: Path
) -> None:
    """A plan whose shards are computed out of order (as forked processes finish) writes the
    same messages, with the same ids, as planning them one after the other."""
    from newsletter.db import make_engine, upgrade
    from newsletter.plan.planner import ShardPlan, compute_shard

    def rows(engine: Engine) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
        with session_scope(engine) as s:
            messages = s.execute(
                select(Message.id, Message.subscriber_id, Message.status).order_by(Message.id)
            ).all()
            slots = s.execute(
                select(Slot.message_id, Slot.position, Slot.item_id).order_by(
                    Slot.message_id, Slot.position
                )
            ).all()
        return [tuple(r) for r in messages], [tuple(r) for r in slots]

    computed: list[int] = []

    def backwards(run_id: int, shards: range) -> list[ShardPlan | None]:
        plans = {}
        for shard in reversed(shards):
            computed.append(shard)
            plans[shard] = compute_shard(other, run_id=run_id, shard=shard)
        return [plans[shard] for shard in shards]

    other = make_engine(f"sqlite:///{tmp_path / 'other.db'}")
    upgrade(other)
    seed(sqlite_engine)
    seed(other)
    serial = plan(sqlite_engine, shard_count=3)
    mapped = plan(other, shard_count=3, compute_shards=backwards)
    assert computed == [2, 1, 0]
    assert mapped.stats == serial.stats  # type: ignore[attr-defined]
    assert mapped.new_messages == serial.new_messages > 0  # type: ignore[attr-defined]
    assert rows(other) == rows(sqlite_engine)
    assert plan(other, shard_count=3, compute_shards=backwards).new_messages == 0  # type: ignore[attr-defined]
    other.dispose()
