"""POST /api/events, PUT /api/subscribers|items/{key}, DELETE /api/subscribers/{key}, Segment."""

from __future__ import annotations

from datetime import timedelta

import pytest
from api_keys import bearer, interactions, item_by_key, make_key, subscriber_by_key
from api_world import SENT_AT, World, events
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session, select

from newsletter.models import Event, Message, Subscriber, Suppression
from newsletter.store.erasure import address_digest

WHEN = (SENT_AT - timedelta(hours=1)).isoformat()


@pytest.fixture
def key(engine: Engine) -> str:
    return make_key(engine)


def put_reader(client: TestClient, key: str, **fields: object) -> None:
    body = {"email": "reader2@example.com", "name": "Bo", "topics": ["python"], **fields}
    response = client.put("/api/subscribers/u1", json=body, headers=bearer(key))
    assert response.status_code in (200, 201), response.text


def event(n: int = 0, **over: object) -> dict[str, object]:
    return {"subscriber_key": "u1", "item_key": "a0", "kind": "view", "occurred_at": WHEN} | over


def test_a_batch_stores_good_rows_and_names_each_bad_row(
    client: TestClient, engine: Engine, world: World, key: str
) -> None:
    put_reader(client, key)
    rows = [
        event(idempotency_key="k1"),
        event(kind="teleport"),  # not a kind
        event(item_key="a1", kind="purchase", value=2, idempotency_key="k2"),
        "not an object",
        event(subscriber_key="nobody"),
        event(occurred_at=(SENT_AT + timedelta(days=2)).isoformat()),  # in the future
        event(idempotency_key="k1", kind="like"),  # repeated key in the same batch
    ]
    response = client.post("/api/events", json={"events": rows}, headers=bearer(key))
    assert response.status_code == 207
    body = response.json()
    assert (body["stored"], body["duplicates"], body["rejected"]) == (2, 1, 4)
    statuses = [(r["index"], r["status"]) for r in body["results"]]
    assert statuses == [
        (0, "stored"),
        (1, "rejected"),
        (2, "stored"),
        (3, "rejected"),
        (4, "rejected"),
        (5, "rejected"),
        (6, "duplicate"),
    ]
    reasons = {r["index"]: r["reason"] for r in body["results"]}
    assert reasons[1].startswith("kind:") and "nobody" in reasons[4]
    assert "future" in reasons[5] and "object" in reasons[3]
    stored = [(i.kind, i.value, i.idempotency_key, i.source) for i in interactions(engine)]
    assert stored == [("view", None, "k1", "api"), ("purchase", 2.0, "k2", "api")]


def test_a_repeated_idempotency_key_is_ignored_across_requests(
    client: TestClient, engine: Engine, world: World, key: str
) -> None:
    put_reader(client, key)
    batch = {"events": [event(idempotency_key="once")]}
    first = client.post("/api/events", json=batch, headers=bearer(key))
    again = client.post("/api/events", json=batch, headers=bearer(key))
    assert (first.status_code, first.json()["stored"]) == (200, 1)
    assert (again.status_code, again.json()["duplicates"]) == (200, 1)
    assert len(interactions(engine)) == 1


def test_more_than_1000_rows_is_refused_whole(
    client: TestClient, engine: Engine, world: World, key: str
) -> None:
    response = client.post("/api/events", json={"events": [event()] * 1001}, headers=bearer(key))
    assert response.status_code == 422
    assert interactions(engine) == []


def test_unknown_keys_can_create_placeholders_that_a_later_upsert_fills(
    client: TestClient, engine: Engine, world: World, key: str
) -> None:
    client.app.state.tracking.settings.api_unknown_keys = "placeholder"  # type: ignore[attr-defined]
    rows = [event(subscriber_key="new-user", item_key="new-item")]
    response = client.post("/api/events", json={"events": rows}, headers=bearer(key))
    assert response.json()["stored"] == 1
    person, thing = subscriber_by_key(engine, "new-user"), item_by_key(engine, "new-item")
    assert person is not None and person.status == "placeholder"
    assert person.email.endswith("@placeholder.invalid")
    assert thing is not None and (thing.active, thing.url) == (False, "")
    put = client.put(
        "/api/subscribers/new-user", json={"email": "new@example.com"}, headers=bearer(key)
    )
    assert put.status_code == 200  # the row existed (as a placeholder)
    person = subscriber_by_key(engine, "new-user")
    assert person is not None and (person.status, person.email) == ("active", "new@example.com")
    body = {"title": "New", "url": "https://example.com/new"}
    client.put("/api/items/new-item", json=body, headers=bearer(key))
    thing = item_by_key(engine, "new-item")
    assert thing is not None and (thing.active, thing.title) == (True, "New")


def test_the_hook_sees_what_was_stored_and_a_failing_hook_loses_nothing(
    client: TestClient, engine: Engine, world: World, key: str
) -> None:
    put_reader(client, key)
    seen: list[tuple[str, str, str]] = []

    def hook(*, engine: Engine, events: list, now: object) -> None:
        seen.extend((e.subscriber_key, e.item_key, e.kind) for e in events)
        raise RuntimeError("trigger engine down")

    client.app.state.api.on_events_stored = hook  # type: ignore[attr-defined]
    rows = [event(), event(kind="nope")]
    response = client.post("/api/events", json={"events": rows}, headers=bearer(key))
    assert response.status_code == 207
    assert seen == [("u1", "a0", "view")] and len(interactions(engine)) == 1


def test_put_subscriber_creates_then_updates_only_the_fields_named(
    client: TestClient, engine: Engine, world: World, key: str
) -> None:
    body = {
        "email": "Reader2@Example.com",
        "name": "Bo",
        "timezone": "Europe/Berlin",
        "frequency": "monthly",
        "topics": ["python", "data"],
        "attributes": {"plan": "pro"},
    }
    created = client.put("/api/subscribers/u1", json=body, headers=bearer(key))
    assert (created.status_code, created.json()) == (201, {"key": "u1", "created": True})
    updated = client.put("/api/subscribers/u1", json={"name": "Bo B."}, headers=bearer(key))
    assert (updated.status_code, updated.json()["created"]) == (200, False)
    row = subscriber_by_key(engine, "u1")
    assert row is not None
    assert (row.email, row.name, row.timezone, row.frequency) == (
        "reader2@example.com",
        "Bo B.",
        "Europe/Berlin",
        "monthly",
    )
    assert (row.topics, row.attributes) == (["python", "data"], {"plan": "pro"})
    client.put("/api/subscribers/u1", json={"name": None, "attributes": {}}, headers=bearer(key))
    row = subscriber_by_key(engine, "u1")
    assert row is not None and (row.name, row.attributes, row.frequency) == (None, {}, "monthly")


def test_a_put_that_omits_status_keeps_an_unsubscribe(
    client: TestClient, engine: Engine, world: World, key: str
) -> None:
    put_reader(client, key, status="unsubscribed")
    put_reader(client, key, name="Renamed")
    row = subscriber_by_key(engine, "u1")
    assert row is not None and (row.status, row.name) == ("unsubscribed", "Renamed")


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"name": "no email yet"}, "must give its email"),
        ({"email": "not-an-address"}, "bad email"),
        ({"email": "x@example.com", "timezone": "Mars/Olympus"}, "unknown timezone"),
        ({"email": "x@example.com", "status": None}, "may not be null"),
        ({"email": "x@example.com", "attributes": {"email": 1}}, "are fields"),
        ({"email": "x@example.com", "colour": "red"}, "Extra inputs"),
    ],
)
def test_put_subscriber_refuses_bad_input_with_a_reason(
    client: TestClient, engine: Engine, world: World, key: str, body: dict, needle: str
) -> None:
    response = client.put("/api/subscribers/u9", json=body, headers=bearer(key))
    assert response.status_code == 422
    assert needle in str(response.json()["detail"])
    assert subscriber_by_key(engine, "u9") is None


def test_an_email_owned_by_another_subscriber_is_refused(
    client: TestClient, engine: Engine, world: World, key: str
) -> None:
    put_reader(client, key)
    response = client.put(
        "/api/subscribers/u2", json={"email": "reader2@example.com"}, headers=bearer(key)
    )
    assert response.status_code == 422 and "already used" in response.json()["detail"]


def test_put_item_upserts_and_keeps_what_it_omits(
    client: TestClient, engine: Engine, world: World, key: str
) -> None:
    body = {
        "title": "Fresh",
        "url": "https://example.com/fresh",
        "summary": "All about it",
        "image_url": "https://example.com/fresh.png",
        "topics": ["python"],
        "published_at": "2026-11-01T08:00:00+01:00",
        "attributes": {"author": "Ann"},
    }
    assert client.put("/api/items/i1", json=body, headers=bearer(key)).status_code == 201
    client.put("/api/items/i1", json={"active": False}, headers=bearer(key))
    client.put("/api/items/i1", json={"title": "Fresher"}, headers=bearer(key))
    row = item_by_key(engine, "i1")
    assert row is not None
    assert (row.title, row.summary, row.active, row.topics) == (
        "Fresher",
        "All about it",
        False,
        ["python"],
    )
    assert row.published_at == SENT_AT.replace(year=2026, month=11, day=1, hour=7)
    assert row.attributes == {"author": "Ann"}
    bad = client.put("/api/items/i2", json={"title": "No URL"}, headers=bearer(key))
    assert bad.status_code == 422 and "url" in bad.json()["detail"]


def test_erasure_removes_personal_data_and_keeps_aggregates(
    client: TestClient, engine: Engine, world: World
) -> None:
    admin = make_key(engine, "ops", scope="admin")
    with Session(engine) as s:  # give the world's reader a key, an event with agent and IP
        reader = s.get(Subscriber, world.subscriber_id)
        assert reader is not None
        reader.external_key = "ada"
        s.add(reader)
        s.add(
            Event(
                message_id=world.message_id,
                subscriber_id=world.subscriber_id,
                kind="click",
                occurred_at=SENT_AT,
                user_agent="Mozilla/5.0 Chrome/1",
                ip="81.2.69.142",
            )
        )
        s.add(Suppression(email=world.email, reason="unsubscribed", created_at=SENT_AT))
        s.commit()
    events_key = make_key(engine, "web")
    refused = client.delete("/api/subscribers/ada", headers=bearer(events_key))
    assert refused.status_code == 403
    response = client.delete("/api/subscribers/ada", headers=bearer(admin))
    assert (response.status_code, response.json()) == (200, {"key": "ada", "erased": True})
    with Session(engine) as s:
        row = s.get(Subscriber, world.subscriber_id)
        assert row is not None
        assert (row.external_key, row.name, row.status) == (None, None, "erased")
        assert row.email.endswith("@erased.invalid") and world.email not in row.email
        sups = {(x.email, x.reason) for x in s.exec(select(Suppression))}
        assert sups == {(address_digest(world.email), "erased")}
        message = s.get(Message, world.message_id)
        assert message is not None and message.subject is None
    [click] = events(engine)
    assert (click.kind, click.message_id, click.user_agent, click.ip) == (
        "click",
        world.message_id,
        None,
        None,
    )
    gone = client.delete("/api/subscribers/ada", headers=bearer(admin))
    assert gone.status_code == 404


def test_an_erased_address_loaded_again_is_suppressed_again(
    client: TestClient, engine: Engine, world: World, key: str
) -> None:
    admin = make_key(engine, "ops", scope="admin")
    put_reader(client, key)
    client.delete("/api/subscribers/u1", headers=bearer(admin))
    put_reader(client, key)  # the website sends the same person again
    with Session(engine) as s:
        sups = {x.email: x.reason for x in s.exec(select(Suppression))}
    assert sups["reader2@example.com"] == "erased"


def test_segment_track_identify_and_batch(
    client: TestClient, engine: Engine, world: World, key: str
) -> None:
    identify = {
        "type": "identify",
        "userId": "seg1",
        "traits": {"email": "seg@example.com", "firstName": "Sam", "lastName": "G", "plan": "x"},
        "context": {"locale": "de-DE", "timezone": "Europe/Berlin"},
    }
    created = client.post("/api/segment/identify", json=identify, headers=bearer(key))
    assert created.status_code == 201
    again = identify | {"traits": {"company": "ACME"}}
    client.post("/api/segment/identify", json=again, headers=bearer(key))
    person = subscriber_by_key(engine, "seg1")
    assert person is not None
    assert (person.email, person.name, person.locale, person.timezone) == (
        "seg@example.com",
        "Sam G",
        "de-DE",
        "Europe/Berlin",
    )
    assert person.attributes == {"plan": "x", "company": "ACME"}  # traits merge
    track = {
        "type": "track",
        "userId": "seg1",
        "event": "Order Completed",
        "properties": {"products": [{"product_id": "a0", "quantity": 2}, {"sku": "a1"}]},
        "timestamp": WHEN,
        "messageId": "m-1",
    }
    response = client.post("/api/segment/track", json=track, headers=bearer(key))
    assert (response.status_code, response.json()["stored"]) == (200, 1)
    batch = {
        "batch": [
            track,  # the same messageId: a duplicate
            track | {"event": "Product Viewed", "messageId": "m-2", "properties": {"id": "a1"}},
            track | {"event": "Spaceship Launched", "messageId": "m-3"},
            {"type": "page", "userId": "seg1"},
        ]
    }
    response = client.post("/api/segment/batch", json=batch, headers=bearer(key))
    assert response.status_code == 207
    statuses = [(r["index"], r["status"]) for r in response.json()["results"]]
    assert statuses == [(0, "duplicate"), (1, "stored"), (2, "rejected"), (3, "rejected")]
    stored = sorted((i.idempotency_key, i.kind, i.value) for i in interactions(engine))
    assert stored == [
        ("m-1#0", "purchase", 2.0),
        ("m-1#1", "purchase", None),
        ("m-2", "view", None),
    ]
