"""The run's life through newsletter.pipeline, on SQLite and PostgreSQL, with known answers."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import numpy as np
import pytest
from dispatch_data import DISPATCH_CONFIG, DISPATCH_NOW, seed_dispatch_world
from sqlalchemy import Engine, delete, select, update

from newsletter import pipeline
from newsletter.config import Settings
from newsletter.deliver import MemoryTransport
from newsletter.deliver.dispatch import DeliveryError, dispatch_run
from newsletter.deliver.policy import DeliveryPolicy
from newsletter.models import Campaign, Interaction, Message, Run
from newsletter.plan.planner import PlanError, plan_shard
from newsletter.plan.runs import load_members
from newsletter.plan.sources import popularity_slot_source
from newsletter.store.runs import message_count
from newsletter.tables import campaign_table, message_table, slot_table, subscriber_table
from newsletter.tasks import InProcess, PlanShard, ProcessPool, Worker

NOW = DISPATCH_NOW  # Monday 05:00 UTC: some subscribers' 08:00 local send hour has come
SETTINGS = Settings(smtp_url="memory:")
SEND_ALL = DeliveryPolicy(honour_send_time=False)
NO_QUIET: dict[str, Any] = {"quiet_hours": None}


def _status(engine: Engine, run_id: int) -> str:
    with engine.connect() as c:
        return str(c.execute(select(Run.status).where(Run.id == run_id)).scalar_one())  # type: ignore[call-overload,arg-type]


def _messages(engine: Engine, run_id: int) -> dict[int, tuple[str, Any]]:
    """subscriber id -> (status, planned_for)."""
    m = message_table.c
    with engine.connect() as c:
        rows = c.execute(select(m.subscriber_id, m.status, m.planned_for).where(m.run_id == run_id))
        return {int(s): (str(st), p) for s, st, p in rows}


def _prepare(engine: Engine, shards: int = 3, scheduled_for: Any = None) -> int:
    seed_dispatch_world(engine, subscribers=24)
    plan = pipeline.create_run(
        engine,
        campaign="weekly",
        now=NOW,
        settings=SETTINGS,
        scheduled_for=scheduled_for,
        shard_count=shards,
        source_factory=popularity_slot_source,
    )
    return plan.run_id


def test_a_run_with_unplanned_members_is_never_delivered_and_resume_plans_them(
    engine: Engine,
) -> None:
    run_id = _prepare(engine)
    first = plan_shard(engine, run_id=run_id, shard=0)  # a process died after shard 0
    assert 0 < first < 24 and message_count(engine, run_id=run_id) == first
    summary = pipeline.deliver_run(
        engine, run_id=run_id, now=NOW, settings=SETTINGS, policy=SEND_ALL
    )
    assert summary.status == "planning" and _status(engine, run_id) == "planning"
    sent_early = summary.result.sent
    dispatch_run(engine, run_id=run_id, transport=MemoryTransport(), settings=SETTINGS, now=NOW)
    assert _status(engine, run_id) == "planning"  # the old entry point settles the same way

    done = pipeline.resume_run(engine, run_id=run_id, now=NOW, settings=SETTINGS, policy=SEND_ALL)
    assert done.status == "delivered" and _status(engine, run_id) == "delivered"
    assert done.plan is not None and done.plan["segment"] == 24
    assert message_count(engine, run_id=run_id) == 24
    statuses = Counter(st for st, _ in _messages(engine, run_id).values())
    assert set(statuses) <= {"sent", "skipped"}
    assert sent_early + done.result.sent == statuses["sent"]


def test_members_and_model_are_fixed_when_the_run_is_prepared(engine: Engine) -> None:
    run_id = _prepare(engine)
    members = set(load_members(engine, run_id=run_id).tolist())
    with engine.begin() as c:  # after preparation: a new subscriber, and all behaviour gone
        c.execute(
            subscriber_table.insert().values(
                email="late@example.com", created_at=NOW, updated_at=NOW, topics=[], attributes={}
            )
        )
        c.execute(delete(Interaction))
    pipeline.plan_run(engine, run_id=run_id, now=NOW)
    planned = _messages(engine, run_id)
    assert set(planned) == members and len(members) == 24  # the late subscriber is not in it
    m, sl = message_table.c, slot_table.c
    with engine.connect() as c:
        sources = {s for (s,) in c.execute(select(sl.source).join(Message, m.id == sl.message_id))}
    assert "popularity" in sources  # ranked by the model fitted before the behaviour vanished


def test_plan_shard_needs_a_prepared_run_and_a_real_shard(engine: Engine) -> None:
    with pytest.raises(PlanError, match="run 7 is not prepared"):
        plan_shard(engine, run_id=7, shard=0)
    run_id = _prepare(engine)
    with pytest.raises(PlanError, match=r"shards 0\.\.2, not 3"):
        plan_shard(engine, run_id=run_id, shard=3)
    with pytest.raises(DeliveryError, match="run 999 does not exist"):
        pipeline.deliver_run(engine, run_id=999, now=NOW, settings=SETTINGS)


def test_release_due_sends_what_has_come_and_leaves_the_rest_waiting(engine: Engine) -> None:
    # scheduled Sunday 23:00 UTC: a send hour is never before the run's scheduled time, so
    # Tokyo's 08:00 has come by NOW and the others' comes later on Monday; without quiet hours
    # (checked again at the send time) the pass a day later sends every one of them
    run_id = _prepare(engine, shards=1, scheduled_for=NOW - timedelta(hours=6))
    with engine.begin() as c:
        c.execute(update(Campaign).values(config={**DISPATCH_CONFIG, "cadence": NO_QUIET}))
    pipeline.plan_run(engine, run_id=run_id, now=NOW)
    planned = {s: when for s, (st, when) in _messages(engine, run_id).items() if st == "planned"}
    due = {s for s, when in planned.items() if when <= NOW}
    later = set(planned) - due
    assert due and later
    released = pipeline.release_due(engine, now=NOW, settings=SETTINGS)
    assert [s.run_id for s in released] == [run_id] and released[0].status == "waiting"
    assert released[0].result.sent == len(due) and released[0].result.waiting == len(later)
    assert pipeline.release_due(engine, now=NOW, settings=SETTINGS) == []  # nothing new is due
    tomorrow = pipeline.release_due(engine, now=NOW + timedelta(days=1), settings=SETTINGS)
    assert tomorrow[0].result.sent == len(later) and tomorrow[0].status == "delivered"
    assert {st for st, _ in _messages(engine, run_id).values()} <= {"sent", "skipped"}


def test_tick_creates_plans_and_releases_each_due_digest_once(engine: Engine) -> None:
    seed_dispatch_world(engine, subscribers=24)
    with engine.begin() as c:
        c.execute(update(Campaign).values(schedule="0 4 * * mon"))  # Mondays 04:00 UTC
        # a send hour is never before the run's scheduled time: 07:00 local is 05:00 UTC in
        # Berlin, so some are due at NOW (with no quiet hours to defer them)
        cadence = {**NO_QUIET, "send_hour_local": 7}
        c.execute(update(Campaign).values(config={**DISPATCH_CONFIG, "cadence": cadence}))
        c.execute(
            campaign_table.insert().values(
                name="broken",
                kind="digest",
                template_name="digest",
                segment_name="everyone",
                schedule="every monday",
                config={},
                active=True,
                created_at=NOW,
            )
        )
    first = pipeline.tick(engine, now=NOW, settings=SETTINGS)
    assert [p.campaign for p in first.planned] == ["weekly"]
    assert first.planned[0].scheduled_for == NOW - timedelta(hours=1)
    assert len(first.errors) == 1 and "campaign 'broken'" in first.errors[0]
    assert "not a cron expression" in first.errors[0]
    assert [s.run_id for s in first.released] == [first.planned[0].run_id]
    assert first.released[0].result.sent > 0
    again = pipeline.tick(engine, now=NOW + timedelta(minutes=5), settings=SETTINGS)
    assert again.planned == [] and again.released == []  # one run per scheduled time
    next_week = pipeline.tick(engine, now=NOW + timedelta(days=2), settings=SETTINGS)
    assert next_week.planned == []  # Monday 04:00 is over a day back: not caught up


def test_delivery_policy_is_plain_data() -> None:
    policy = DeliveryPolicy(on_unknown="fail", honour_send_time=True, max_attempts=3)
    assert DeliveryPolicy.from_dict(policy.as_dict()) == policy
    runtime = policy.runtime()
    assert runtime.on_unknown == "fail" and runtime.backoff.max_attempts == 3
    assert runtime.clock is None and DeliveryPolicy(live_clock=True).runtime().clock is not None
    with pytest.raises(DeliveryError, match="unknown delivery policy keys"):
        DeliveryPolicy.from_dict({"sleep": 1})
    with pytest.raises(DeliveryError, match="use 'resend' or 'fail'"):
        DeliveryPolicy(on_unknown="maybe")  # type: ignore[arg-type]
    assert DeliveryPolicy.from_settings(Settings(delivery_on_unknown="fail")).on_unknown == "fail"


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_executors_return_results_in_task_order(
    start_method: str, database_pair: Callable[[], tuple[Engine, str]]
) -> None:
    engine, url = database_pair()
    run_id = _prepare(engine)
    tasks = [PlanShard(url, run_id, shard) for shard in (2, 0, 1, 0)]
    seen: list[int] = []
    pooled = ProcessPool(2, start_method=start_method).run(
        tasks,
        worker=Worker(engine=engine, settings=SETTINGS),
        on_done=lambda t, _: seen.append(t.shard),
    )
    assert seen == [2, 0, 1, 0] and sum(pooled) == 24  # each member planned once
    assert min(pooled[1], pooled[3]) == 0  # shard 0 twice: one of them finds it done
    again = InProcess().run(tasks, worker=Worker(engine=engine))  # the caller's engine still works
    assert again == [0, 0, 0, 0]
    members = np.sort(load_members(engine, run_id=run_id))
    assert sorted(_messages(engine, run_id)) == members.tolist()


def test_a_persons_hold_and_cancel_stand_through_the_pipeline(engine: Engine) -> None:
    run_id = _prepare(engine)
    pipeline.plan_run(engine, run_id=run_id, now=NOW)
    assert pipeline.hold_run(engine, run_id=run_id)
    held = pipeline.deliver_run(engine, run_id=run_id, now=NOW, settings=SETTINGS, policy=SEND_ALL)
    assert held.result.sent == 0 and held.as_dict()["halted"] == "held"
    assert pipeline.finalize_run(engine, run_id=run_id, now=NOW) == "held"
    assert _status(engine, run_id) == "held"
    with pytest.raises(DeliveryError, match="paused from the web UI"):
        pipeline.resume_run(engine, run_id=run_id, now=NOW, settings=SETTINGS)
    assert pipeline.release_due(engine, now=NOW + timedelta(days=1), settings=SETTINGS) == []
    assert pipeline.release_run(engine, run_id=run_id) and _status(engine, run_id) == "waiting"
    assert pipeline.cancel_run(engine, run_id=run_id, now=NOW)
    assert pipeline.finalize_run(engine, run_id=run_id, now=NOW) == "cancelled"
    with pytest.raises(DeliveryError, match="cancelled"):
        pipeline.retry_failed_run(engine, run_id=run_id, now=NOW, settings=SETTINGS)
    assert {st for st, _ in _messages(engine, run_id).values()} == {"skipped"}


def test_a_model_stored_in_parts_is_the_model_every_process_plans_with(
    database_pair: Callable[[], tuple[Engine, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A model over PART_BYTES is pickled straight into parts and read back part by part: the
    same bytes, and spawned processes (which read it from the database) plan every member."""
    from newsletter.plan import runs
    from newsletter.recommend import artifact
    from newsletter.store import artifacts
    from newsletter.tables import run_artifact_part_table

    monkeypatch.setattr(artifacts, "PART_BYTES", 4096)
    engine, url = database_pair()
    run_id = _prepare(engine)
    with engine.connect() as c:
        parts = c.execute(select(run_artifact_part_table.c.part)).scalars().all()
    assert len(parts) > 3 and sorted(parts) == list(range(len(parts)))
    fitted = runs.load_model(engine, run_id=run_id)  # the fitting process's cached model
    stored = artifacts.load_artifact(engine, run_id=run_id, kind="model")
    assert stored is not None and stored.content == artifact.dumps(fitted)  # pickled as before
    runs._CACHE.clear()
    loaded = runs.load_model(engine, run_id=run_id)  # read back part by part
    assert loaded is not fitted
    np.testing.assert_array_equal(loaded.subscriber_ids, fitted.subscriber_ids)
    assert artifact.dumps(artifact.loads(stored.content)) == artifact.dumps(loaded)
    tasks = [PlanShard(url, run_id, shard) for shard in range(3)]
    planned = ProcessPool(2, start_method="spawn").run(tasks, worker=Worker(engine=engine))
    assert sum(planned) == 24
