"""Dispatcher behaviour with the memory transport, on SQLite and PostgreSQL, with known answers."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from email import message_from_bytes

import pytest
from dispatch_data import DISPATCH_NOW
from sqlalchemy import Engine, select, update

from newsletter.config import Settings
from newsletter.deliver import Backoff, MemoryTransport, SendResult
from newsletter.deliver.dispatch import (
    DeliveryPaused,
    DispatchPolicy,
    Outcome,
    dispatch_run,
    resume,
    retry_failed,
)
from newsletter.deliver.transport import BaseTransport, OutgoingMessage
from newsletter.models import Message, Run, Subscriber, Suppression
from newsletter.store import delivery as store
from newsletter.tables import (
    item_table,
    message_table,
    slot_table,
    subscriber_table,
    suppression_table,
)

NOW = DISPATCH_NOW
SETTINGS = Settings()


class FakeTime:
    """A monotonic clock that only moves when someone sleeps."""

    def __init__(self) -> None:
        self.t = 0.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.t += seconds


def policy(**kw: object) -> DispatchPolicy:
    fake = FakeTime()
    backoff = Backoff(base=1, factor=2, cap=30, max_attempts=3, rng=random.Random(1))
    return DispatchPolicy(
        **{
            "backoff": backoff,
            "sleep": fake.sleep,  # type: ignore[arg-type]
            "monotonic": fake.monotonic,
            **kw,
        }
    )


def messages(engine: Engine, run_id: int) -> dict[int, tuple[str, str, str | None, int]]:
    """message id -> (email, status, reason, attempts)."""
    m, s = message_table.c, subscriber_table.c
    with engine.connect() as c:
        rows = c.execute(
            select(m.id, s.email, m.status, m.reason, m.attempts)
            .join(subscriber_table, s.id == m.subscriber_id)
            .where(m.run_id == run_id)
        ).all()
    return {int(r[0]): (str(r[1]), str(r[2]), r[3], int(r[4])) for r in rows}


def planned(engine: Engine, run_id: int) -> dict[int, str]:
    return {i: row[0] for i, row in messages(engine, run_id).items() if row[1] == "planned"}


@pytest.fixture
def run_id(
    engine: Engine, dispatch_world: Callable[..., None], plan_weekly: Callable[..., int]
) -> int:
    dispatch_world(engine, subscribers=24)
    return plan_weekly(engine, shard_count=3)


def test_every_planned_message_is_sent_once_with_a_stable_message_id(
    engine: Engine, run_id: int
) -> None:
    todo = planned(engine, run_id)
    assert len(todo) >= 15
    transport = MemoryTransport()
    seen: list[Outcome] = []
    result = dispatch_run(
        engine,
        run_id=run_id,
        transport=transport,
        settings=SETTINGS,
        now=NOW,
        policy=policy(progress=seen.append),
    )
    assert result.sent == len(todo) == len(transport.sent) == len(seen)
    assert sorted(int(m.key) for m in transport.sent) == sorted(todo)
    assert {m.recipients[0] for m in transport.sent} == set(todo.values())
    parsed = [message_from_bytes(m.data) for m in transport.sent]
    ids = [p["Message-ID"] for p in parsed]
    assert len(set(ids)) == len(ids)
    assert all(f".{m.key}." in p["Message-ID"] for m, p in zip(transport.sent, parsed, strict=True))
    assert all(p.get_content_type() == "multipart/alternative" for p in parsed)
    rows = messages(engine, run_id)
    assert {rows[i][1] for i in todo} == {"sent"} and {rows[i][3] for i in todo} == {1}
    counts = store.run_counts(engine, run_id=run_id)
    assert counts.by_status.get("sent") == len(todo) and "planned" not in counts.by_status
    with engine.connect() as c:
        run = c.execute(select(Run.status, Run.finished_at).where(Run.id == run_id)).one()  # type: ignore[call-overload,arg-type]
        sent_at = c.execute(
            select(Message.sent_at, Message.subject).where(  # type: ignore[call-overload]
                Message.run_id == run_id, Message.status == "sent"
            )
        ).first()  # type: ignore[arg-type]
    assert run[0] == "delivered" and run[1] is not None
    assert sent_at[0] == NOW and sent_at[1]
    again = dispatch_run(
        engine, run_id=run_id, transport=transport, settings=SETTINGS, now=NOW, policy=policy()
    )
    assert again.sent == 0 and len(transport.sent) == len(todo)  # nothing is sent twice


def test_transient_failures_retry_with_backoff_then_fail_with_the_reason(
    engine: Engine, run_id: int
) -> None:
    todo = planned(engine, run_id)
    flaky, dead = sorted(todo)[:2]
    transport = MemoryTransport(
        failures={todo[flaky]: ["transient", "transient"], todo[dead]: "transient"}
    )
    fake = FakeTime()
    backoff = Backoff(base=1, factor=2, cap=30, max_attempts=3, rng=random.Random(1))
    pol = DispatchPolicy(backoff=backoff, sleep=fake.sleep, monotonic=fake.monotonic)
    result = dispatch_run(
        engine, run_id=run_id, transport=transport, settings=SETTINGS, now=NOW, policy=pol
    )
    rows = messages(engine, run_id)
    assert rows[flaky][1:] == ("sent", None, 3)
    assert rows[dead][1:] == ("failed", "transient", 3)
    assert result.sent == len(todo) - 1 and result.failed == 1 and result.retried == 4
    tries = Counter(int(a.key) for a in transport.attempts)
    assert tries[flaky] == 3 and tries[dead] == 3
    assert fake.slept and all(0 <= s <= 4 for s in fake.slept)  # jittered, capped by 1*2**(n-1)
    with engine.connect() as c:
        error = c.execute(select(Message.error).where(Message.id == dead)).scalar_one()  # type: ignore[call-overload,arg-type]
    assert "after 3 attempts" in error and "try later" in error


def test_a_recipient_5xx_bounces_suppresses_and_the_next_plan_skips_them(
    engine: Engine, run_id: int, plan_weekly: Callable[..., int]
) -> None:
    todo = planned(engine, run_id)
    victim = min(todo)
    transport = MemoryTransport(failures={todo[victim]: "permanent"})
    result = dispatch_run(
        engine, run_id=run_id, transport=transport, settings=SETTINGS, now=NOW, policy=policy()
    )
    assert result.failed == 1 and result.sent == len(todo) - 1
    rows = messages(engine, run_id)
    assert rows[victim][1:3] == ("failed", "bounced")
    with engine.connect() as c:
        status = c.execute(select(Subscriber.status).where(Subscriber.email == todo[victim])).one()  # type: ignore[call-overload,arg-type]
        sup = c.execute(select(Suppression.reason).where(Suppression.email == todo[victim])).all()  # type: ignore[call-overload,arg-type]
    assert status[0] == "bounced" and [r[0] for r in sup] == ["bounced"]
    later = plan_weekly(engine, scheduled_for=NOW + timedelta(days=7))
    nxt = {row[0]: row for row in messages(engine, later).values()}
    status, reason = nxt[todo[victim]][1:3]
    assert status == "skipped"
    assert reason == "bounced"


def test_unsubscribes_during_a_run_stop_the_unsent_messages(engine: Engine, run_id: int) -> None:
    todo = planned(engine, run_id)
    ids = sorted(todo)
    before, suppressed, during = ids[0], ids[1], ids[-1]
    with engine.begin() as c:  # between planning and sending
        c.execute(
            update(subscriber_table)
            .where(Subscriber.email == todo[before])  # type: ignore[attr-defined,arg-type]
            .values(status="unsubscribed")
        )
        c.execute(
            suppression_table.insert().values(
                email=todo[suppressed], reason="unsubscribed", created_at=NOW
            )
        )

    def unsubscribe_last(outcome: Outcome) -> None:  # while the run is sending
        if outcome.status == "sent":
            with engine.begin() as c:
                c.execute(
                    update(subscriber_table)
                    .where(Subscriber.email == todo[during])  # type: ignore[attr-defined,arg-type]
                    .values(status="unsubscribed")
                )

    transport = MemoryTransport()
    result = dispatch_run(
        engine,
        run_id=run_id,
        transport=transport,
        settings=SETTINGS,
        now=NOW,
        policy=policy(progress=unsubscribe_last, batch=5, claim_batch=1),
    )
    rows = messages(engine, run_id)
    for mid in (before, suppressed, during):
        assert rows[mid][1:3] == ("skipped", "unsubscribed")
    assert result.skipped == 3 and result.sent == len(todo) - 3
    assert {m.recipients[0] for m in transport.sent}.isdisjoint(
        {todo[before], todo[suppressed], todo[during]}
    )


def _crash(engine: Engine, run_id: int, ids: list[int]) -> None:
    """Leave messages in `sending`, as a process killed mid-transaction would."""
    with engine.begin() as c:
        c.execute(
            update(message_table)
            .where(Message.id.in_(ids))  # type: ignore[attr-defined,union-attr]
            .values(status="sending", attempts=1)
        )


def test_resume_resends_unknown_messages_at_least_once_by_default(
    engine: Engine, run_id: int
) -> None:
    todo = planned(engine, run_id)
    window = sorted(todo)[:2]
    _crash(engine, run_id, window)
    transport = MemoryTransport()
    result = resume(
        engine, run_id=run_id, transport=transport, settings=SETTINGS, now=NOW, policy=policy()
    )
    assert result.reconciled == 2 and result.sent == len(todo)
    assert sorted(int(m.key) for m in transport.sent) == sorted(todo)
    assert {messages(engine, run_id)[i][1] for i in todo} == {"sent"}


def test_resume_at_most_once_fails_unknown_messages_and_retry_can_send_them(
    engine: Engine, run_id: int
) -> None:
    todo = planned(engine, run_id)
    window = sorted(todo)[:2]
    _crash(engine, run_id, window)
    transport = MemoryTransport()
    result = resume(
        engine,
        run_id=run_id,
        transport=transport,
        settings=SETTINGS,
        now=NOW,
        policy=policy(on_unknown="fail"),
    )
    assert result.reconciled == 2 and result.sent == len(todo) - 2
    assert not {int(m.key) for m in transport.sent} & set(window)
    rows = messages(engine, run_id)
    assert {rows[i][1:3] for i in window} == {("failed", "unknown_after_crash")}
    plain = retry_failed(
        engine, run_id=run_id, transport=transport, settings=SETTINGS, now=NOW, policy=policy()
    )
    assert plain.reconciled == 0 and plain.sent == 0  # only transient failures by default
    forced = retry_failed(
        engine,
        run_id=run_id,
        transport=transport,
        settings=SETTINGS,
        now=NOW,
        policy=policy(),
        include_unknown=True,
    )
    assert forced.reconciled == 2 and forced.sent == 2
    assert Counter(int(m.key) for m in transport.sent) == Counter(set(todo))


def test_retry_failed_resends_transient_failures_only(engine: Engine, run_id: int) -> None:
    todo = planned(engine, run_id)
    dead, bounced = sorted(todo)[:2]
    transport = MemoryTransport(
        failures={todo[dead]: ["transient"] * 3, todo[bounced]: "permanent"}
    )
    dispatch_run(
        engine, run_id=run_id, transport=transport, settings=SETTINGS, now=NOW, policy=policy()
    )
    assert messages(engine, run_id)[dead][1:3] == ("failed", "transient")
    result = retry_failed(
        engine, run_id=run_id, transport=transport, settings=SETTINGS, now=NOW, policy=policy()
    )
    assert result.reconciled == 1 and result.sent == 1
    rows = messages(engine, run_id)
    assert rows[dead][1] == "sent" and rows[bounced][1:3] == ("failed", "bounced")


def test_a_message_is_claimed_by_one_worker_only(engine: Engine, run_id: int) -> None:
    mid = min(planned(engine, run_id))
    assert store.mark_sending(engine, message_id=mid, now=NOW).status == "sending"
    assert store.mark_sending(engine, message_id=mid, now=NOW).status == "taken"
    assert store.mark_sent(engine, message_id=mid, subject="s", now=NOW)
    assert not store.mark_sent(engine, message_id=mid, subject="s", now=NOW)  # stale record
    assert not store.mark_retry(engine, message_id=mid, error="x", now=NOW)


class Unreachable(BaseTransport):
    """Every attempt fails to connect (wrong host, bad credentials)."""

    def __init__(self) -> None:
        self.keys: list[int] = []

    def send(self, message: OutgoingMessage) -> SendResult:
        self.keys.append(int(message.key))
        return SendResult(message.key, "transient", None, "connection refused", "connect")


def test_connect_failures_pause_the_run_without_burning_attempts(
    engine: Engine, run_id: int
) -> None:
    todo = planned(engine, run_id)
    transport, fake = Unreachable(), FakeTime()
    backoff = Backoff(base=1, factor=2, cap=30, rng=random.Random(1))
    pol = DispatchPolicy(
        backoff=backoff, sleep=fake.sleep, monotonic=fake.monotonic, max_connect_failures=3
    )
    with pytest.raises(DeliveryPaused, match="cannot reach the mail server"):
        dispatch_run(
            engine, run_id=run_id, transport=transport, settings=SETTINGS, now=NOW, policy=pol
        )
    assert transport.keys == [min(todo)] * 3  # new messages wait while the server is down
    assert len(fake.slept) == 2  # backed off between the tries
    rows = messages(engine, run_id)
    assert {rows[i][1] for i in todo} == {"planned"} and {rows[i][3] for i in todo} == {0}
    with engine.connect() as c:
        assert c.execute(select(Run.status).where(Run.id == run_id)).scalar_one() == "paused"  # type: ignore[call-overload,arg-type]
    done = resume(
        engine,
        run_id=run_id,
        transport=MemoryTransport(),
        settings=SETTINGS,
        now=NOW,
        policy=policy(),
    )
    assert done.sent == len(todo)


def test_a_batch_claim_skips_departed_recipients_and_is_recorded_once(
    engine: Engine, run_id: int
) -> None:
    todo = planned(engine, run_id)
    ids = sorted(todo)[:6]
    with engine.begin() as c:
        c.execute(
            update(subscriber_table)
            .where(Subscriber.email == todo[ids[1]])  # type: ignore[attr-defined,arg-type]
            .values(status="bounced")
        )
        c.execute(
            suppression_table.insert().values(
                email=todo[ids[4]], reason="complained", created_at=NOW
            )
        )
    claim = store.claim_many(engine, message_ids=ids, now=NOW)
    keep = [ids[0], ids[2], ids[3], ids[5]]
    assert claim.claimed == keep
    assert claim.skipped == {ids[1]: "bounced", ids[4]: "complained"}
    again = store.claim_many(engine, message_ids=ids, now=NOW)  # another worker: nothing left
    assert again.claimed == [] and again.skipped == {}
    later = NOW + timedelta(seconds=5)
    sent = [(ids[0], "S0", later), (ids[2], "S2", NOW)]
    assert sorted(store.record_sent(engine, sent=sent)) == [ids[0], ids[2]]
    assert store.record_sent(engine, sent=sent) == []  # a stale record: no-op
    assert store.release_claims(engine, message_ids=[ids[3], ids[5], ids[0]], now=NOW) == 2
    rows = messages(engine, run_id)
    assert [rows[i][1:] for i in ids] == [
        ("sent", None, 1),
        ("skipped", "bounced", 0),
        ("sent", None, 1),
        ("planned", None, 0),  # released: the attempt was given back
        ("skipped", "complained", 0),
        ("planned", None, 0),
    ]
    m = message_table.c
    with engine.connect() as c:
        got = dict(c.execute(select(m.id, m.subject).where(m.id.in_(ids[:3]))).all())
        at = c.execute(select(m.sent_at).where(m.id == ids[0])).scalar_one()
    assert got == {ids[0]: "S0", ids[1]: None, ids[2]: "S2"}
    assert at.replace(tzinfo=None) == later.replace(tzinfo=None)


@pytest.mark.parametrize("claim_batch", [1, 7, 200])
def test_batched_claims_send_every_message_once_and_count_transactions(
    engine: Engine, run_id: int, claim_batch: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    todo = planned(engine, run_id)
    calls: Counter[str] = Counter()
    for name in ("claim_many", "record_sent"):
        real = getattr(store, name)

        def counted(*a: object, _real: Callable[..., object] = real, _n: str = name, **k: object):
            calls[_n] += 1
            return _real(*a, **k)

        monkeypatch.setattr(store, name, counted)
    transport = MemoryTransport()
    done = dispatch_run(
        engine,
        run_id=run_id,
        transport=transport,
        settings=SETTINGS,
        now=NOW,
        policy=policy(claim_batch=claim_batch),
    )
    assert done.sent == len(todo)
    assert sorted(int(m.key) for m in transport.sent) == sorted(todo)
    assert {row[1] for row in messages(engine, run_id).values()} == {"sent"}
    shards = Counter(store.run_shards(engine, run_id=run_id))
    per_shard = [n for n in _shard_sizes(engine, run_id).values()]
    expected = sum(-(-n // claim_batch) for n in per_shard)  # ceil per shard
    assert len(shards) == 3 and calls["claim_many"] == expected
    assert calls["record_sent"] == expected


def _shard_sizes(engine: Engine, run_id: int) -> Counter[int]:
    m = message_table.c
    with engine.connect() as c:
        return Counter(int(r[0]) for r in c.execute(select(m.shard).where(m.run_id == run_id)))


def test_stored_input_is_the_planned_message(engine: Engine, run_id: int) -> None:
    from newsletter.render.stored import stored_inputs

    ids = sorted(planned(engine, run_id))
    inputs = stored_inputs(engine, message_ids=[*ids, 10**9])
    assert sorted(inputs) == ids  # a message that does not exist is absent
    sl, it = slot_table.c, item_table.c
    with engine.connect() as c:
        rows = c.execute(
            select(sl.position, it.title, it.url)
            .join(item_table, it.id == sl.item_id)
            .where(sl.message_id == ids[0])
            .order_by(sl.position)
        ).all()
    data = inputs[ids[0]]
    got = [
        (s["position"], s["item"]["title"], s["item"]["url"])
        for sec in data["sections"]
        for s in sec["slots"]
    ]
    assert sorted(got) == [tuple(r) for r in rows] and rows
    assert data["subscriber"]["email"] == planned(engine, run_id)[ids[0]]
    assert data["campaign"]["name"] == "weekly" and data["run"]["id"] == run_id
