"""Twenty one-click unsubscribe POSTs at once for one message record one event (PostgreSQL)."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from api_world import SECRET, SENT_AT, Clock, build_world, events, subscriber
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session, select

from newsletter import tokens
from newsletter.api.app import create_app
from newsletter.config import Settings
from newsletter.models import Campaign, Message, Run

PARALLEL, TRIALS = 20, 5


def _more_messages(engine: Engine, subscriber_id: int, count: int) -> list[int]:
    """Messages of further runs of the world's campaign, for the same subscriber."""
    with Session(engine) as s:
        campaign = s.exec(select(Campaign)).one()
        ids = []
        for n in range(1, count + 1):
            when = SENT_AT + timedelta(days=7 * n)
            run = Run(campaign_id=campaign.id, scheduled_for=when, created_at=when)
            s.add(run)
            s.flush()
            message = Message(
                run_id=run.id,
                subscriber_id=subscriber_id,
                status="sent",
                planned_for=when,
                sent_at=when,
                updated_at=when,
            )
            s.add(message)
            s.flush()
            ids.append(int(message.id))  # type: ignore[arg-type]
        s.commit()
    return ids


def _burst(clients: list[TestClient], path: str) -> list[int]:
    """POST the one-click body from every client at the same moment; the status codes."""
    barrier, statuses = threading.Barrier(len(clients)), []

    def post(client: TestClient) -> None:
        barrier.wait()
        response = client.post(
            path,
            content=b"List-Unsubscribe=One-Click",
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        statuses.append(response.status_code)

    threads = [threading.Thread(target=post, args=(c,)) for c in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return statuses


@pytest.mark.postgres
def test_parallel_one_click_posts_record_one_event_per_message(pg_engine: Engine) -> None:
    world = build_world(pg_engine)
    messages = [world.message_id, *_more_messages(pg_engine, world.subscriber_id, TRIALS - 1)]
    settings = Settings(secret_key=SECRET, base_url="https://news.example.com")
    app = create_app(settings=settings, engine=pg_engine, clock=Clock(SENT_AT))
    clients = [TestClient(app) for _ in range(PARALLEL)]
    for message_id in messages:
        path = f"/u/{tokens.sign_unsubscribe(secret_key=SECRET, message_id=message_id)}"
        assert _burst(clients, path) == [200] * PARALLEL
    per_message = [e.message_id for e in events(pg_engine, "unsubscribe")]
    assert sorted(per_message) == sorted(messages)  # exactly one each
    assert subscriber(pg_engine, world.subscriber_id).status == "unsubscribed"
