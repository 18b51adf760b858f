"""The click and pixel hot path answers exactly what the FastAPI routes answer, and queues the
same events; whatever it does not handle reaches the routes; the flush's facts cache and COPY
insert store what the plain insert stored."""

from __future__ import annotations

from datetime import timedelta

import pytest
from api_world import ARTICLE_0, SECRET, SENT_AT, Clock, World, delete_message, events
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from newsletter import tokens
from newsletter.api.app import create_app
from newsletter.config import Settings
from newsletter.track.buffer import EventBuffer, Pending

CHROME = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/131.0 Safari/537.36"
QUIET = Settings(secret_key=SECRET, track_flush_rows=10_000, track_flush_ms=60_000)


def _paths(message_id: int) -> dict[str, str]:
    click = tokens.sign_click(secret_key=SECRET, message_id=message_id, slot=0, url=ARTICLE_0)
    bad_scheme = tokens.sign_click(
        secret_key=SECRET, message_id=message_id, slot=0, url="javascript:alert(1)"
    )
    pixel = tokens.sign_open(secret_key=SECRET, message_id=message_id)
    return {
        "click": f"/t/c/{click}",
        "tampered click": f"/t/c/{click[:-2]}{'AA' if click[-2:] != 'AA' else 'BB'}",
        "non-web click": f"/t/c/{bad_scheme}",
        "other host": "/t/c/%2F%2Fevil.example.com",
        "pixel": f"/t/o/{pixel}.gif",
        "bad pixel": "/t/o/garbage.gif",
        "extra segment": f"/t/c/{click}/more",
        "preview click": "/t/c/"
        + tokens.sign_click(secret_key=SECRET, message_id="preview", slot=0, url=ARTICLE_0),
    }


def _answers(client: TestClient, paths: dict[str, str]) -> dict[str, tuple[int, str, bytes]]:
    out = {}
    for name, path in paths.items():
        r = client.get(path, headers={"user-agent": CHROME})
        kept = {k: v for k, v in r.headers.items() if k not in ("date", "content-length")}
        out[name] = (r.status_code, repr(sorted(kept.items())), r.content)
    return out


def test_the_hot_path_answers_what_the_routes_answer(
    engine: Engine, world: World, clock: Clock
) -> None:
    clock.after_send(3600)
    paths = _paths(world.message_id)
    plain = create_app(settings=QUIET, engine=engine, clock=clock)
    with TestClient(plain, follow_redirects=False) as client:
        expected = _answers(client, paths)
    stored_plainly = [(e.kind, e.slot_position, e.item_id, e.is_machine) for e in events(engine)]
    assert expected["click"][0] == 302 and expected["pixel"][0] == 200
    assert expected["tampered click"][0] == expected["non-web click"][0] == 400
    assert expected["extra segment"][0] == 404

    buffered = create_app(settings=QUIET, engine=engine, clock=clock, buffered=True)
    with TestClient(buffered, follow_redirects=False) as client:
        assert _answers(client, paths) == expected
        queued = buffered.state.tracking.buffer.pending()
    assert queued == 2  # the click and the pixel; nothing for the rest
    stored = [(e.kind, e.slot_position, e.item_id, e.is_machine) for e in events(engine)]
    assert stored == stored_plainly * 2


def test_a_prefetch_click_through_the_hot_path_is_flagged_and_head_still_works(
    engine: Engine, world: World, clock: Clock
) -> None:
    clock.after_send(3600)
    app = create_app(settings=QUIET, engine=engine, clock=clock, buffered=True)
    click = _paths(world.message_id)["click"]
    with TestClient(app, follow_redirects=False) as client:
        prefetch = client.get(click, headers={"user-agent": CHROME, "sec-purpose": "prefetch"})
        head = client.head(click, headers={"user-agent": CHROME})
        assert prefetch.headers["location"] == head.headers["location"]
    reasons = sorted((e.machine_reason or "") for e in events(engine, "click"))
    assert reasons == ["head-request", "prefetch"]


def test_a_message_deleted_after_its_facts_were_cached_loses_no_other_event(
    engine: Engine, world: World
) -> None:
    buffer = EventBuffer(engine, flush_rows=1000, flush_ms=60_000)
    at = SENT_AT + timedelta(hours=1)
    buffer.add(Pending("open", world.message_id, at, CHROME, None))
    assert buffer.flush() == 1  # the message's facts are now cached
    delete_message(engine, world.message_id)
    buffer.add(Pending("open", world.message_id, at + timedelta(seconds=1), CHROME, None))
    # PostgreSQL refuses the row (foreign key; the cache is cleared and the retry skips it);
    # SQLite with foreign keys on does too: either way nothing is written for the gone message
    assert buffer.flush() == 0 and buffer.pending() == 1
    assert buffer.close() == 0
    assert len(events(engine, "open")) == 1


@pytest.mark.parametrize("count", [1, 600])
def test_the_bulk_insert_stores_every_field(engine: Engine, world: World, count: int) -> None:
    buffer = EventBuffer(engine, flush_rows=10_000, flush_ms=60_000)
    at = SENT_AT + timedelta(days=1)
    long_agent = "x" * 700  # clipped to the column's 500
    for n in range(count):
        buffer.add(
            Pending(
                "click",
                world.message_id,
                at + timedelta(minutes=n),
                long_agent,
                "81.2.69.1",
                1,
                "https://example.com/articles/second",
            )
        )
    assert buffer.close() == 0
    stored = events(engine, "click")
    assert len(stored) == count
    first = stored[0]
    assert (first.slot_position, first.item_id, first.subscriber_id) == (
        1,
        world.item_ids[1],
        world.subscriber_id,
    )
    assert first.occurred_at == at and len(first.user_agent or "") == 500
    assert first.ip == "81.2.69.1" and first.url == "https://example.com/articles/second"
    assert first.is_machine is False and first.external_id is None
