"""Buffered tracking: requests only queue, the flusher writes, shutdown flushes, a database
outage keeps the rows (bounded), and the burst rules still apply."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

from api_world import ARTICLE_0, ARTICLE_1, SECRET, SENT_AT, Clock, World, events
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from newsletter import tokens
from newsletter.api.app import create_app
from newsletter.config import Settings
from newsletter.db import make_engine
from newsletter.track.buffer import EventBuffer, Pending

CHROME = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/131.0 Safari/537.36"


def click_path(message_id: int, slot: int | None, url: str) -> str:
    return f"/t/c/{tokens.sign_click(secret_key=SECRET, message_id=message_id, slot=slot, url=url)}"


def test_requests_queue_and_shutdown_writes_them(
    engine: Engine, world: World, clock: Clock
) -> None:
    settings = Settings(secret_key=SECRET, track_flush_rows=10_000, track_flush_ms=60_000)
    app = create_app(settings=settings, engine=engine, clock=clock, buffered=True)
    with TestClient(app, follow_redirects=False) as client:
        clock.after_send(3600)
        assert (
            client.get(
                click_path(world.message_id, 0, ARTICLE_0), headers={"user-agent": CHROME}
            ).status_code
            == 302
        )
        pixel = f"/t/o/{tokens.sign_open(secret_key=SECRET, message_id=world.message_id)}.gif"
        assert client.get(pixel, headers={"user-agent": "Mozilla/5.0"}).status_code == 200
        assert client.get(click_path(999_999, 0, ARTICLE_1)).status_code == 302  # gone: skipped
        assert events(engine) == []  # nothing written while the request was answered
        assert app.state.tracking.buffer.pending() == 3
    written = [
        (e.kind, e.slot_position, e.item_id, e.is_machine, e.machine_reason) for e in events(engine)
    ]
    assert written == [
        ("click", 0, world.item_ids[0], False, None),
        ("open", None, None, True, "apple-mpp"),
    ]


def test_a_full_batch_is_written_without_waiting_for_the_timer(
    engine: Engine, world: World
) -> None:
    buffer = EventBuffer(engine, flush_rows=3, flush_ms=60_000)
    buffer.start()
    for n in range(3):
        buffer.add(
            Pending(
                "click",
                world.message_id,
                SENT_AT + timedelta(hours=1, seconds=n),
                CHROME,
                "81.2.69.1",
                n % 2,
                "u",
            )
        )
    deadline = time.monotonic() + 30  # the timer is a minute away: only the size can wake it
    while buffer.stats["written"] < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert buffer.stats["written"] == 3 and buffer.pending() == 0
    assert buffer.close() == 0
    # three clicks on two distinct links within 2 s: not a link burst (needs three links)
    assert [(e.kind, e.is_machine) for e in events(engine)] == [("click", False)] * 3


def test_the_burst_rules_apply_across_a_flushed_batch(engine: Engine, world: World) -> None:
    buffer = EventBuffer(engine, flush_rows=1000, flush_ms=60_000)
    at = SENT_AT + timedelta(hours=2)
    for n, (slot, url) in enumerate(
        [(0, ARTICLE_0), (1, ARTICLE_1), (None, "https://example.com/c")]
    ):
        buffer.add(
            Pending(
                "click", world.message_id, at + timedelta(seconds=n), CHROME, "81.2.69.1", slot, url
            )
        )
    buffer.add(
        Pending("click", world.message_id, at, CHROME, "81.2.69.1", 0, ARTICLE_0, method="HEAD")
    )
    assert buffer.flush() == 4
    assert (
        sorted(e.machine_reason or "" for e in events(engine))
        == ["head-request"] + ["link-burst"] * 3
    )


def test_a_database_outage_keeps_the_rows_bounded_and_retries(
    tmp_path: Path, engine: Engine, world: World
) -> None:
    broken = make_engine(f"sqlite:///{tmp_path / 'no-tables.db'}")
    buffer = EventBuffer(broken, flush_rows=1000, flush_ms=60_000, max_rows=3)
    item = Pending("open", world.message_id, SENT_AT + timedelta(hours=1), CHROME, None)
    assert [buffer.add(item) for _ in range(4)] == [True, True, True, False]
    assert buffer.flush() == 0 and buffer.pending() == 3  # kept for the next try
    assert buffer.stats["dropped"] == 1 and buffer.stats["failed_flushes"] == 1
    buffer.engine = engine  # the database is back
    assert buffer.close() == 0
    assert len(events(engine, "open")) == 3


def _click(world: World, seconds: float, slot: int | None, url: str) -> Pending:
    return Pending(
        "click",
        world.message_id,
        SENT_AT + timedelta(hours=2, seconds=seconds),
        CHROME,
        "81.2.69.1",
        slot,
        url,
    )


def test_a_burst_split_over_flushes_is_found_from_the_cached_history(
    engine: Engine, world: World
) -> None:
    buffer = EventBuffer(engine, flush_rows=1000, flush_ms=60_000)
    buffer.add(_click(world, 0, 0, ARTICLE_0))
    buffer.add(_click(world, 1, 1, ARTICLE_1))
    assert buffer.flush() == 2
    assert [e.is_machine for e in events(engine)] == [False, False]  # two links: not yet
    buffer.add(_click(world, 2, None, "https://example.com/c"))
    assert buffer.flush() == 1
    assert [e.machine_reason for e in events(engine)] == ["link-burst"] * 3


def test_a_hit_another_writer_stored_between_flushes_is_read_again(
    engine: Engine, world: World
) -> None:
    """The cache holds the first click only; a click written by another process (here the
    unbuffered store call) changes the message's count, so its history is re-read."""
    from newsletter.store import events as store_events

    buffer = EventBuffer(engine, flush_rows=1000, flush_ms=60_000)
    buffer.add(_click(world, 0, 0, ARTICLE_0))
    assert buffer.flush() == 1
    store_events.insert_event(
        engine,
        message_id=world.message_id,
        subscriber_id=events(engine)[0].subscriber_id,
        slot_position=1,
        kind="click",
        occurred_at=SENT_AT + timedelta(hours=2, seconds=1),
        is_machine=False,
        url=ARTICLE_1,
    )
    buffer.add(_click(world, 2, None, "https://example.com/c"))
    assert buffer.flush() == 1
    assert [e.machine_reason for e in events(engine)] == ["link-burst"] * 3


def test_the_bulk_insert_returns_the_ids_of_its_rows_in_order(engine: Engine, world: World) -> None:
    from newsletter.store.event_batches import insert_events

    base = {
        "message_id": world.message_id,
        "subscriber_id": 1,
        "item_id": None,
        "kind": "click",
        "is_machine": False,
        "machine_reason": None,
        "user_agent": None,
        "ip": None,
        "external_id": None,
    }
    rows = [
        {
            **base,
            "slot_position": n % 2,
            "url": f"https://example.com/{n}",
            "occurred_at": SENT_AT + timedelta(minutes=n),
        }
        for n in range(5)
    ]
    ids = insert_events(engine, rows=rows)
    assert len(set(ids)) == 5
    stored = {e.id: e.url for e in events(engine)}
    assert [stored[i] for i in ids] == [r["url"] for r in rows]
    more = insert_events(engine, rows=rows[:1])  # the sequence moved on: no id is reused
    assert more[0] > max(ids)


def test_a_buffered_honeypot_hit_is_queued_and_flags_its_burst_at_the_flush(
    engine: Engine, world: World, clock: Clock
) -> None:
    settings = Settings(secret_key=SECRET, track_flush_rows=10_000, track_flush_ms=60_000)
    app = create_app(settings=settings, engine=engine, clock=clock, buffered=True)
    honeypot = tokens.sign_honeypot(secret_key=SECRET, message_id=world.message_id)
    with TestClient(app, follow_redirects=False) as client:
        clock.after_send(3600)  # late: no early-unopened rule, only the honeypot can tell
        client.get(click_path(world.message_id, 0, ARTICLE_0), headers={"user-agent": CHROME})
        clock.after_send(3602)
        assert client.get(f"/t/h/{honeypot}", headers={"user-agent": CHROME}).status_code == 200
        assert events(engine) == [] and app.state.tracking.buffer.pending() == 2
    assert [(e.kind, e.is_machine, e.machine_reason) for e in events(engine)] == [
        ("click", True, "honeypot"),
        ("honeypot", True, "honeypot"),
    ]
