"""Unsubscribe (GET confirms, POST = RFC 8058 one-click), preferences and view in browser."""

from __future__ import annotations

from api_world import (
    ARTICLE_0,
    SECRET,
    World,
    delete_message,
    events,
    subscriber,
    suppressions,
)
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session

from newsletter import tokens
from newsletter.models import Suppression
from testsupport import with_csrf

ONE_CLICK = {"content": b"List-Unsubscribe=One-Click"}
FORM = {"content-type": "application/x-www-form-urlencoded"}


def unsubscribe_path(message_id: int | str) -> str:
    return f"/u/{tokens.sign_unsubscribe(secret_key=SECRET, message_id=message_id)}"


def preferences_path(message_id: int | str) -> str:
    return f"/p/{tokens.sign_preferences(secret_key=SECRET, message_id=message_id)}"


def view_path(message_id: int | str) -> str:
    return f"/v/{tokens.sign_view(secret_key=SECRET, message_id=message_id)}"


def test_get_unsubscribe_shows_a_form_and_changes_nothing(
    client: TestClient, engine: Engine, world: World
) -> None:
    response = client.get(unsubscribe_path(world.message_id))
    assert response.status_code == 200
    assert '<form method="post">' in response.text and "<button" in response.text
    assert response.headers["cache-control"].startswith("no-store")
    assert subscriber(engine, world.subscriber_id).status == "active"
    assert suppressions(engine) == [] and events(engine) == []


def test_one_click_post_unsubscribes_once_and_is_idempotent(
    client: TestClient, engine: Engine, world: World, clock
) -> None:
    path = unsubscribe_path(world.message_id)
    for _ in range(2):
        response = client.post(path, headers=FORM, **ONE_CLICK)
        assert response.status_code == 200
        assert "You're unsubscribed" in response.text or "You&#39;re unsubscribed" in response.text
    assert subscriber(engine, world.subscriber_id).status == "unsubscribed"
    [row] = suppressions(engine)
    assert (row.email, row.reason) == (world.email, "unsubscribed")
    [event] = events(engine)
    assert (event.kind, event.message_id, event.subscriber_id) == (
        "unsubscribe",
        world.message_id,
        world.subscriber_id,
    )
    assert (event.is_machine, event.occurred_at) == (False, clock.now)


def test_only_the_rfc_8058_body_unsubscribes(
    client: TestClient, engine: Engine, world: World
) -> None:
    path = unsubscribe_path(world.message_id)
    for body in ["", "List-Unsubscribe=No", "List-Unsubscribe=one-click", "x=One-Click"]:
        response = client.post(path, headers=FORM, content=body)
        assert response.status_code == 400 and "Nothing changed" in response.text
    assert subscriber(engine, world.subscriber_id).status == "active"
    assert suppressions(engine) == [] and events(engine) == []
    boundary = "nlBoundary42"
    multipart = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="List-Unsubscribe"\r\n\r\n'
        f"One-Click\r\n--{boundary}--\r\n"
    )
    headers = {"content-type": f"multipart/form-data; boundary={boundary}"}
    assert client.post(path, headers=headers, content=multipart).status_code == 200
    assert subscriber(engine, world.subscriber_id).status == "unsubscribed"


def test_the_confirmation_page_button_sends_the_one_click_body(
    client: TestClient, world: World
) -> None:
    page = client.get(unsubscribe_path(world.message_id)).text
    assert '<input type="hidden" name="List-Unsubscribe" value="One-Click">' in page


def test_one_click_keeps_an_earlier_suppression(
    client: TestClient, engine: Engine, world: World, clock
) -> None:
    with Session(engine) as s:
        s.add(Suppression(email=world.email, reason="imported", created_at=clock.now))
        s.commit()
    path = unsubscribe_path(world.message_id)
    assert client.post(path, headers=FORM, **ONE_CLICK).status_code == 200
    assert subscriber(engine, world.subscriber_id).status == "unsubscribed"
    assert [(r.email, r.reason) for r in suppressions(engine)] == [(world.email, "imported")]


def test_bad_or_stale_unsubscribe_tokens(client: TestClient, engine: Engine, world: World) -> None:
    assert client.post("/u/garbage", **ONE_CLICK).status_code == 400
    wrong_purpose = tokens.sign_preferences(secret_key=SECRET, message_id=world.message_id)
    assert client.post(f"/u/{wrong_purpose}", **ONE_CLICK).status_code == 400
    assert client.get("/u/garbage").status_code == 400
    delete_message(engine, world.message_id)
    assert client.post(unsubscribe_path(world.message_id), **ONE_CLICK).status_code == 404
    assert subscriber(engine, world.subscriber_id).status == "active"
    assert suppressions(engine) == [] and events(engine) == []


def test_preferences_page_shows_frequency_and_escaped_topics(
    client: TestClient, world: World
) -> None:
    response = client.get(preferences_path(world.message_id))
    assert response.status_code == 200
    page = response.text
    assert 'value="weekly"\n checked' in page or 'value="weekly" checked' in page
    assert 'value="python" checked' in page and 'value="data">' in page
    assert "&lt;b&gt;html&lt;/b&gt;" in page and "<b>html</b>" not in page
    assert world.email in page


def test_preferences_post_updates_frequency_and_topics(
    client: TestClient, engine: Engine, world: World
) -> None:
    body = "frequency=monthly&topics=data&topics=%3Cb%3Ehtml%3C%2Fb%3E&topics=data"
    path = preferences_path(world.message_id)
    response = client.post(path, headers=FORM, content=with_csrf(client, path, body))
    assert response.status_code == 200 and "saved" in response.text
    row = subscriber(engine, world.subscriber_id)
    assert (row.frequency, row.topics) == ("monthly", ["<b>html</b>", "data"])
    response = client.post(path, headers=FORM, content=with_csrf(client, path, "frequency=paused"))
    assert (subscriber(engine, world.subscriber_id).frequency, response.status_code) == (
        "paused",
        200,
    )
    assert subscriber(engine, world.subscriber_id).topics == []


def test_preferences_post_refuses_bad_input_and_changes_nothing(
    client: TestClient, engine: Engine, world: World
) -> None:
    path = preferences_path(world.message_id)
    cases = {
        "frequency=daily&topics=data": "frequency &#39;daily&#39; is not one of weekly, monthly",
        "topics=data": "frequency None is not one of",
        "frequency=weekly&topics=%3Cscript%3E": "unknown topic(s) &#39;&lt;script&gt;&#39;",
    }
    for body, message in cases.items():
        response = client.post(path, headers=FORM, content=with_csrf(client, path, body))
        assert response.status_code == 400
        assert message in response.text
        assert "<script>" not in response.text
    row = subscriber(engine, world.subscriber_id)
    assert (row.frequency, row.topics) == ("weekly", ["python"])


def test_preferences_for_a_deleted_message_or_bad_token(
    client: TestClient, engine: Engine, world: World
) -> None:
    assert client.get("/p/garbage").status_code == 400
    assert client.post("/p/garbage", headers=FORM, content="frequency=weekly").status_code == 400
    path = preferences_path(world.message_id)
    body = with_csrf(client, path, "frequency=weekly")
    delete_message(engine, world.message_id)
    assert client.get(path).status_code == 404
    assert client.post(path, headers=FORM, content=body).status_code == 404


def test_view_in_browser_renders_the_message_with_tracked_links(
    client: TestClient, engine: Engine, world: World, settings
) -> None:
    response = client.get(view_path(world.message_id))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    assert "Article &lt;0&gt;" in html and "Article <0>" not in html
    assert f"{settings.base_url}/t/c/" in html and f"{settings.base_url}/t/o/" in html
    assert f'href="{ARTICLE_0}"' not in html  # item links are tracked click links
    assert "script-src 'none'" in response.headers["content-security-policy"]
    assert events(engine) == []  # viewing records nothing by itself


def test_view_of_a_deleted_message_is_404(client: TestClient, engine: Engine, world: World) -> None:
    assert client.get("/v/garbage").status_code == 400
    assert client.get(view_path("preview")).status_code == 404
    delete_message(engine, world.message_id)
    response = client.get(view_path(world.message_id))
    assert response.status_code == 404 and "find this email" in response.text
