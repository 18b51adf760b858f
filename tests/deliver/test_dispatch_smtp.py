"""The dispatcher against a real SMTP server in its own process: exactly-once, flaky, bounces."""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Callable
from datetime import timedelta

import pytest
from dispatch_data import DISPATCH_NOW
from smtp_server import SmtpTestServer
from sqlalchemy import Engine, select

from newsletter.config import Settings
from newsletter.deliver import Backoff, transport_from_url
from newsletter.deliver.dispatch import DispatchPolicy, dispatch_run
from newsletter.models import Message, Subscriber, Suppression
from newsletter.store import delivery as store
from newsletter.tables import message_table, subscriber_table

NOW = DISPATCH_NOW
SETTINGS = Settings()
MID = re.compile(r"<nl\.(\d+)\.")
pytestmark = pytest.mark.timeout(120)


def planned_emails(engine: Engine, run_id: int) -> dict[int, str]:
    """message id -> address of the run's planned messages."""
    m, s = message_table.c, subscriber_table.c
    with engine.connect() as c:
        rows = c.execute(
            select(m.id, s.email)
            .join(subscriber_table, s.id == m.subscriber_id)
            .where(m.run_id == run_id, m.status == "planned")
        ).all()
    return {int(i): str(e) for i, e in rows}


def received_ids(server: SmtpTestServer) -> Counter[int]:
    """Messages received per message id (parsed from the stable Message-ID)."""
    out: Counter[int] = Counter()
    for mid, n in server.count_by_message_id().items():
        found = MID.match(mid or "")
        assert found, f"unexpected Message-ID {mid!r}"
        out[int(found.group(1))] += n
    return out


def test_flaky_server_still_gets_every_planned_message_exactly_once(
    engine: Engine,
    dispatch_world: Callable[..., None],
    plan_weekly: Callable[..., int],
    flaky_smtp_server: SmtpTestServer,
) -> None:
    dispatch_world(engine, subscribers=30)
    run_id = plan_weekly(engine, shard_count=2)
    todo = planned_emails(engine, run_id)
    backoff = Backoff(base=0.001, factor=2, cap=0.01, max_attempts=40, rng=random.Random(5))
    policy = DispatchPolicy(backoff=backoff, max_connect_failures=40)
    with transport_from_url(flaky_smtp_server.url, connections=2, timeout=10) as transport:
        result = dispatch_run(
            engine, run_id=run_id, transport=transport, settings=SETTINGS, now=NOW, policy=policy
        )
    assert result.retried > 0, "the flaky server should have forced some retries"
    assert result.sent == len(todo) and result.failed == 0
    assert received_ids(flaky_smtp_server) == Counter(set(todo))  # each exactly once
    assert flaky_smtp_server.count_by_recipient() == Counter(todo.values())
    counts = store.run_counts(engine, run_id=run_id)
    assert counts.by_status.get("sent") == len(todo) and "failed" not in counts.by_status


def test_parallel_connections_and_shards_deliver_exactly_once(
    engine: Engine,
    dispatch_world: Callable[..., None],
    plan_weekly: Callable[..., int],
    smtp_server_factory: Callable[..., SmtpTestServer],
) -> None:
    server = smtp_server_factory(max_per_connection=7)  # forces reconnects mid-run
    dispatch_world(engine, subscribers=30)
    run_id = plan_weekly(engine, shard_count=3)
    todo = planned_emails(engine, run_id)
    with transport_from_url(server.url, connections=3, timeout=10) as transport:
        result = dispatch_run(
            engine, run_id=run_id, transport=transport, settings=SETTINGS, now=NOW
        )
    assert result.sent == len(todo)
    assert received_ids(server) == Counter(set(todo))
    assert {len(m.recipients) for m in server.received()} == {1}


def test_a_rejected_recipient_bounces_is_suppressed_and_skipped_next_time(
    engine: Engine,
    dispatch_world: Callable[..., None],
    plan_weekly: Callable[..., int],
    smtp_server_factory: Callable[..., SmtpTestServer],
) -> None:
    dispatch_world(engine, subscribers=20)
    run_id = plan_weekly(engine)
    todo = planned_emails(engine, run_id)
    victim = sorted(todo)[3]
    server = smtp_server_factory(reject=[todo[victim]])
    with transport_from_url(server.url, timeout=10) as transport:
        result = dispatch_run(
            engine, run_id=run_id, transport=transport, settings=SETTINGS, now=NOW
        )
    assert result.failed == 1 and result.sent == len(todo) - 1
    assert todo[victim] not in server.count_by_recipient()
    with engine.connect() as c:
        status, reason, error = c.execute(
            select(Message.status, Message.reason, Message.error).where(Message.id == victim)  # type: ignore[call-overload,arg-type]
        ).one()
        subscriber = c.execute(
            select(Subscriber.status).where(Subscriber.email == todo[victim])
        ).scalar_one()  # type: ignore[call-overload,arg-type]
        suppressed = c.execute(
            select(Suppression.reason).where(Suppression.email == todo[victim])
        ).scalar_one()  # type: ignore[call-overload,arg-type]
    assert (status, reason) == ("failed", "bounced") and "550" in error
    assert subscriber == "bounced" and suppressed == "bounced"
    later = plan_weekly(engine, scheduled_for=NOW + timedelta(days=7))
    m = message_table.c
    with engine.connect() as c:
        nxt = c.execute(
            select(m.status, m.reason).where(
                m.run_id == later,
                m.subscriber_id
                == select(Subscriber.id)
                .where(  # type: ignore[call-overload]
                    Subscriber.email == todo[victim]
                )
                .scalar_subquery(),
            )
        ).one()  # type: ignore[arg-type]
    assert nxt[0] == "skipped"
    assert nxt[1] == "bounced"


@pytest.mark.parametrize("on_unknown", ["resend", "fail"])
def test_connections_dropped_after_the_server_stored_the_message(
    on_unknown: str,
    sqlite_engine: Engine,
    dispatch_world: Callable[..., None],
    plan_weekly: Callable[..., int],
    smtp_server_factory: Callable[..., SmtpTestServer],
) -> None:
    """The live at-least-once window: the server stores, then drops before answering 250."""
    engine = sqlite_engine
    server = smtp_server_factory(drop_after_store_rate=0.3, seed=11)
    dispatch_world(engine, subscribers=20)
    run_id = plan_weekly(engine)
    todo = planned_emails(engine, run_id)
    backoff = Backoff(base=0.001, cap=0.01, max_attempts=20, rng=random.Random(2))
    policy = DispatchPolicy(backoff=backoff, on_unknown=on_unknown)  # type: ignore[arg-type]
    with transport_from_url(server.url, timeout=10) as transport:
        dispatch_run(
            engine, run_id=run_id, transport=transport, settings=SETTINGS, now=NOW, policy=policy
        )
    received = received_ids(server)
    m = message_table.c
    with engine.connect() as c:
        rows = {
            int(i): (s, r, int(a))
            for i, s, r, a in c.execute(
                select(m.id, m.status, m.reason, m.attempts).where(m.run_id == run_id)
            )
        }
    assert set(received) == set(todo)  # every message reached the server at least once
    if on_unknown == "resend":
        copies = {i for i, n in received.items() if n > 1}
        assert copies, "the drops should have caused some re-sends"
        assert all(rows[i][2] >= received[i] for i in copies)  # a copy per dropped attempt
        assert {rows[i][0] for i in todo} == {"sent"}
    else:
        assert set(received.values()) == {1}  # never twice
        unknown = {i for i in todo if rows[i][:2] == ("failed", "unknown_after_drop")}
        assert unknown and {rows[i][0] for i in set(todo) - unknown} == {"sent"}
