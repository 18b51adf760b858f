"""Shard tasks run anywhere: planned and delivered out of order, twice each, by processes
started with ``spawn`` and given only (database URL, run id, shard number), a run ends exactly
as the same run done in one process -- same messages, same slots, same emails -- with exactly
one message per (run, subscriber) and one email per recipient."""

from __future__ import annotations

import multiprocessing as mp
import re
from collections.abc import Callable
from email import message_from_bytes
from email.policy import default
from typing import Any

import pytest
from dispatch_data import DISPATCH_NOW, seed_dispatch_world
from smtp_server import SmtpTestServer
from sqlalchemy import Engine, select

from newsletter import pipeline
from newsletter.config import Settings
from newsletter.deliver.policy import DeliveryPolicy
from newsletter.deliver.shards import start_pass
from newsletter.models import Message, Slot, Subscriber
from newsletter.tables import message_table, subscriber_table, table_of
from newsletter.tasks import DeliverShard, PlanShard, Task, run_task
from newsletter.tokens import verify_token

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
SECRET = "spawn-test-secret-key-0123456789abcdef"
SHARDS = 3
# Out of order, twice each, on three spawned processes: the first three run at once, so
# shard 2 (plan) and shard 1 (deliver) are also run twice concurrently.
PLAN_ORDER = [2, 2, 0, 1, 0, 1]
DELIVER_ORDER = [1, 2, 1, 0, 2, 0]
TOKEN = re.compile(r"(/t/c/|/t/o/|/t/h/|/u/|/p/|/v/|unsubscribe%20)([A-Za-z0-9_-]{16,})")
MESSAGE_ID = re.compile(r"<nl\.(\d+)\.[0-9a-f]+@")


def _settings(smtp_url: str) -> Settings:
    return Settings(secret_key=SECRET, smtp_url=smtp_url)


def _spawned(pool: Any, tasks: list[Task]) -> list[Any]:
    """Run the tasks on the spawned processes, one task at a time per process."""
    return list(pool.map(run_task, tasks, chunksize=1))


def _messages(engine: Engine, run_id: int) -> dict[str, tuple[Any, ...]]:
    m, s = message_table.c, subscriber_table.c
    with engine.connect() as c:
        rows = c.execute(
            select(s.email, m.arm, m.status, m.reason, m.shard, m.planned_for, m.attempts)
            .add_columns(m.subject, m.sent_at)
            .join(subscriber_table, s.id == m.subscriber_id)
            .where(m.run_id == run_id)
        ).all()
    by_email = {str(r[0]): tuple(r[1:]) for r in rows}
    assert len(by_email) == len(rows)  # exactly one message per (run, subscriber)
    return by_email


def _slots(engine: Engine, run_id: int) -> dict[str, list[tuple[Any, ...]]]:
    m, s, sl = (table_of(t).c for t in (Message, Subscriber, Slot))
    with engine.connect() as c:
        rows = c.execute(
            select(s.email, sl.position, sl.section, sl.item_id, sl.source, sl.score)
            .add_columns(sl.propensity, sl.reason_kind, sl.reason_anchor, sl.reason_text)
            .join(message_table, m.id == sl.message_id)
            .join(subscriber_table, s.id == m.subscriber_id)
            .where(m.run_id == run_id)
            .order_by(s.email, sl.position)
        ).all()
    out: dict[str, list[tuple[Any, ...]]] = {}
    for row in rows:
        out.setdefault(str(row[0]), []).append(tuple(row[1:]))
    return out


def _emails(engine: Engine, run_id: int, server: SmtpTestServer) -> dict[str, Any]:
    """Each recipient's email with database ids replaced by what they stand for: every
    signed token by its verified payload (purpose, recipient, slot, URL)."""
    m, s = message_table.c, subscriber_table.c
    with engine.connect() as c:
        owner = {
            int(i): str(e)
            for i, e in c.execute(
                select(m.id, s.email)
                .join(subscriber_table, s.id == m.subscriber_id)
                .where(m.run_id == run_id)
            )
        }

    def token(match: re.Match[str]) -> str:
        payload = verify_token(match.group(2), secret_key=SECRET)
        whose = owner[int(payload.message_id)]
        return f"{match.group(1)}<{payload.purpose.name} {whose} {payload.slot} {payload.url}>"

    out: dict[str, Any] = {}
    for received in server.received():
        (recipient,) = received.recipients
        parsed = message_from_bytes(received.data, policy=default)
        found = MESSAGE_ID.match(parsed["Message-ID"])
        assert found and owner[int(found.group(1))] == recipient
        headers = [
            (k, TOKEN.sub(token, str(v)))
            for k, v in parsed.items()
            if not k.startswith("X-") and k not in ("Message-ID", "Content-Type")
        ]
        parts = [
            (part.get_content_type(), TOKEN.sub(token, part.get_content()))
            for part in parsed.iter_parts()
        ]
        assert recipient not in out, f"{recipient} received two emails"
        out[recipient] = (headers, parts)
    return out


def test_shards_planned_and_delivered_by_spawned_processes_match_an_in_process_run(
    database_pair: Callable[[], tuple[Engine, str]],
    smtp_servers: Callable[..., SmtpTestServer],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    policy = DeliveryPolicy(honour_send_time=False)
    (here, _), (there, there_url) = database_pair(), database_pair()
    here_mail, there_mail = smtp_servers(), smtp_servers()
    for engine in (here, there):
        seed_dispatch_world(engine, subscribers=30)

    # The reference: the whole run in this process.
    local = _settings(here_mail.url)
    plan = pipeline.create_run(
        here, campaign="weekly", now=DISPATCH_NOW, settings=local, shard_count=SHARDS
    )
    pipeline.plan_run(here, run_id=plan.run_id, now=DISPATCH_NOW)
    done = pipeline.deliver_run(
        here, run_id=plan.run_id, now=DISPATCH_NOW, settings=local, policy=policy
    )
    assert done.status == "delivered"

    # The same run, every shard task in its own spawned process (settings from its env).
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", SECRET)
    monkeypatch.setenv("NEWSLETTER_SMTP_URL", there_mail.url)
    monkeypatch.setenv("NEWSLETTER_CONFIG", "/nonexistent/newsletter.toml")
    remote = _settings(there_mail.url)
    prepared = pipeline.create_run(
        there, campaign="weekly", now=DISPATCH_NOW, settings=remote, shard_count=SHARDS
    )
    run_id = prepared.run_id
    assert run_id == plan.run_id and prepared.members == plan.members == 30
    with mp.get_context("spawn").Pool(3) as pool:
        new = _spawned(pool, [PlanShard(there_url, run_id, shard) for shard in PLAN_ORDER])
        planned = pipeline.plan_run(there, run_id=run_id, now=DISPATCH_NOW)
        start_pass(there, run_id=run_id, now=DISPATCH_NOW, policy=policy)
        results = _spawned(pool, [DeliverShard(there_url, run_id, s) for s in DELIVER_ORDER])
    assert sum(new) == 30 and planned.new_messages == 0  # the spawned processes planned all
    assert sum(r.sent for r in results) == done.result.sent  # and sent each message once
    assert pipeline.finalize_run(there, run_id=run_id, now=DISPATCH_NOW) == "delivered"

    messages = _messages(here, plan.run_id)
    assert len(messages) == 30 and _messages(there, prepared.run_id) == messages
    assert {row[1] for row in messages.values()} <= {"sent", "skipped"}
    slots = _slots(here, plan.run_id)
    assert slots and _slots(there, prepared.run_id) == slots
    emails = _emails(here, plan.run_id, here_mail)
    sent = {email for email, row in messages.items() if row[1] == "sent"}
    assert set(emails) == sent and len(emails) >= 20
    assert _emails(there, prepared.run_id, there_mail) == emails
    assert set(there_mail.count_by_recipient().values()) == {1}
