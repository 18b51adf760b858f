"""Click redirects and the open pixel against a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

import pytest
from api_world import ARTICLE_0, ARTICLE_1, SECRET, SENT_AT, Clock, World, delete_message, events
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from newsletter import tokens
from newsletter.api.app import create_app
from newsletter.api.pages import PIXEL_GIF
from newsletter.config import Settings
from newsletter.db import make_engine
from newsletter.render.links import MessageLinks

CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
BARRACUDA = "Mozilla/5.0 (compatible; Barracuda Sentinel (EE))"
GMAIL_PROXY = (
    "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
)


def click_path(message_id: int | str, slot: int | None, url: str) -> str:
    token = tokens.sign_click(secret_key=SECRET, message_id=message_id, slot=slot, url=url)
    return f"/t/c/{token}"


def open_path(message_id: int | str) -> str:
    return f"/t/o/{tokens.sign_open(secret_key=SECRET, message_id=message_id)}.gif"


def assert_pixel(response) -> None:
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/gif"
    assert response.content == PIXEL_GIF and len(PIXEL_GIF) == 43
    assert "no-store" in response.headers["cache-control"]


def test_healthz(client: TestClient) -> None:
    response = client.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_human_click_redirects_to_the_signed_url_and_records_the_slot(
    client: TestClient, engine: Engine, world: World, clock: Clock
) -> None:
    clock.after_send(600)  # (a click within 3 minutes and no open is weakly machine)
    response = client.get(
        click_path(world.message_id, 0, ARTICLE_0), headers={"user-agent": CHROME}
    )
    assert response.status_code == 302
    # exactly the signed URL; a header carries ASCII, so the IRI's 'é' goes percent-encoded
    assert response.headers["location"] == ARTICLE_0.replace("é", "%C3%A9")
    assert response.headers["referrer-policy"] == "no-referrer"
    [event] = events(engine)
    assert (event.kind, event.message_id, event.subscriber_id) == (
        "click",
        world.message_id,
        world.subscriber_id,
    )
    assert (event.slot_position, event.item_id, event.url) == (0, world.item_ids[0], ARTICLE_0)
    assert (event.is_machine, event.machine_reason) == (False, None)
    assert (event.user_agent, event.ip) == (CHROME, "testclient")
    assert event.occurred_at == clock.now


def test_the_message_links_the_renderer_builds_resolve(
    client: TestClient, engine: Engine, world: World, settings: Settings
) -> None:
    links = MessageLinks(base_url=settings.base_url, secret_key=SECRET, message_id=world.message_id)
    path = links.click(ARTICLE_1, 1).removeprefix(settings.base_url)
    response = client.get(path, headers={"user-agent": CHROME})
    assert response.headers["location"] == ARTICLE_1
    assert events(engine)[0].item_id == world.item_ids[1]
    assert_pixel(client.get(links.open_pixel().removeprefix(settings.base_url)))
    assert len(events(engine, "open")) == 1


def test_click_without_slot_or_on_a_missing_slot_records_no_item(
    client: TestClient, engine: Engine, world: World
) -> None:
    for slot in (None, 7):
        response = client.get(click_path(world.message_id, slot, ARTICLE_1))
        assert response.headers["location"] == ARTICLE_1
    assert [(e.slot_position, e.item_id) for e in events(engine)] == [(None, None), (7, None)]


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t[:-2] + ("A" if t[-2] != "A" else "B") + t[-1],  # flipped MAC character
        lambda t: t[:10],  # truncated
        lambda t: "not-a-token",
        lambda t: tokens.sign_click(secret_key="another-key", message_id=1, slot=0, url=ARTICLE_0),
        lambda t: tokens.sign_open(secret_key=SECRET, message_id=1),  # wrong purpose
    ],
)
def test_a_broken_click_link_is_400_without_redirect_or_event(
    client: TestClient, engine: Engine, world: World, mangle
) -> None:
    good = click_path(world.message_id, 0, ARTICLE_0).removeprefix("/t/c/")
    response = client.get(f"/t/c/{mangle(good)}", headers={"user-agent": CHROME})
    assert response.status_code == 400
    assert "location" not in response.headers
    assert "This link is broken" in response.text
    assert "example.com" not in response.text and SECRET not in response.text
    assert events(engine) == []


def test_a_tampered_destination_is_refused(
    client: TestClient, engine: Engine, world: World
) -> None:
    import base64

    token = click_path(world.message_id, 0, "https://example.com/a").removeprefix("/t/c/")
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    evil = raw.replace(b"example.com", b"evil.test/xx")
    forged = base64.urlsafe_b64encode(evil).rstrip(b"=").decode()
    response = client.get(f"/t/c/{forged}")
    assert response.status_code == 400 and "location" not in response.headers
    assert events(engine) == []


def test_a_click_for_a_deleted_message_still_redirects_but_records_nothing(
    client: TestClient, engine: Engine, world: World
) -> None:
    delete_message(engine, world.message_id)
    response = client.get(click_path(world.message_id, 1, ARTICLE_1))
    assert (response.status_code, response.headers["location"]) == (302, ARTICLE_1)
    response = client.get(click_path("preview", 0, ARTICLE_1))  # a preview's token
    assert (response.status_code, response.headers["location"]) == (302, ARTICLE_1)
    assert events(engine) == []


def test_scanner_and_too_fast_clicks_are_flagged_machine(
    client: TestClient, engine: Engine, world: World, clock: Clock
) -> None:
    clock.after_send(60)
    client.get(click_path(world.message_id, 0, ARTICLE_0), headers={"user-agent": BARRACUDA})
    clock.after_send(3)
    client.get(click_path(world.message_id, 1, ARTICLE_1), headers={"user-agent": CHROME})
    clock.after_send(11)  # 8 s after the last: the same burst, early and unopened (weak)
    client.get(click_path(world.message_id, 1, ARTICLE_1), headers={"user-agent": CHROME})
    clock.after_send(4000)  # a reader, later
    client.get(click_path(world.message_id, 1, ARTICLE_1), headers={"user-agent": CHROME})
    flags = [(e.is_machine, e.machine_reason) for e in events(engine)]
    assert flags == [
        (True, "scanner:barracuda"),
        (True, "too-fast"),
        (True, "early-unopened"),
        (False, None),
    ]


def test_opens_are_recorded_with_machine_flags(
    client: TestClient, engine: Engine, world: World, clock: Clock
) -> None:
    clock.after_send(3600)
    agents = ["Mozilla/5.0", GMAIL_PROXY, CHROME]
    for agent in agents:
        assert_pixel(client.get(open_path(world.message_id), headers={"user-agent": agent}))
    opened = events(engine, "open")
    assert [(e.is_machine, e.machine_reason) for e in opened] == [
        (True, "apple-mpp"),
        (False, "gmail-proxy"),
        (False, None),
    ]
    assert {(e.message_id, e.subscriber_id, e.occurred_at) for e in opened} == {
        (world.message_id, world.subscriber_id, SENT_AT.replace(hour=10))
    }


@pytest.mark.parametrize(
    "path",
    ["/t/o/garbage.gif", "/t/o/garbage", "/t/o/.gif", "/t/o/" + "x" * 9000 + ".gif"],
)
def test_the_pixel_answers_a_gif_for_bad_tokens(
    client: TestClient, engine: Engine, world: World, path: str
) -> None:
    assert_pixel(client.get(path))
    assert events(engine) == []


def test_the_pixel_answers_a_gif_for_a_deleted_message(
    client: TestClient, engine: Engine, world: World
) -> None:
    delete_message(engine, world.message_id)
    assert_pixel(client.get(open_path(world.message_id)))
    assert_pixel(client.get(open_path("preview")))
    assert events(engine) == []


def test_the_pixel_answers_a_gif_when_the_database_fails(
    tmp_path: Path, settings: Settings
) -> None:
    broken = make_engine(f"sqlite:///{tmp_path / 'no-tables.db'}")  # no schema: every query fails
    app = create_app(settings=settings, engine=broken)
    with TestClient(app) as client:
        assert_pixel(client.get(open_path(1)))
        response = client.get(click_path(1, 0, ARTICLE_1), follow_redirects=False)
        assert (response.status_code, response.headers["location"]) == (302, ARTICLE_1)
    broken.dispose()


def test_a_signed_non_http_destination_is_never_redirected_to(
    client: TestClient, engine: Engine, world: World
) -> None:
    response = client.get(click_path(world.message_id, 0, "javascript:alert(1)"))
    assert response.status_code == 400 and "location" not in response.headers
    assert events(engine) == []
