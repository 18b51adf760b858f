"""Machine clicks through the real routes: the honeypot re-flags its burst, link bursts,
HEAD and prefetch requests, scanner ranges; human clicks stay human."""

from __future__ import annotations

from api_world import ARTICLE_0, ARTICLE_1, SECRET, Clock, World, events
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from newsletter import tokens

CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
UA = {"user-agent": CHROME}


def click(client: TestClient, message_id: int, slot: int | None, url: str, **kw) -> int:
    token = tokens.sign_click(secret_key=SECRET, message_id=message_id, slot=slot, url=url)
    return client.request(kw.pop("method", "GET"), f"/t/c/{token}", **kw).status_code


def honeypot(client: TestClient, message_id: int) -> int:
    token = tokens.sign_honeypot(secret_key=SECRET, message_id=message_id)
    return client.get(f"/t/h/{token}", headers=UA).status_code


def flags(engine: Engine) -> list[tuple[str, bool, str | None]]:
    return [(e.kind, e.is_machine, e.machine_reason) for e in events(engine)]


def test_a_honeypot_hit_marks_the_clicks_of_its_burst_even_those_before_it(
    client: TestClient, engine: Engine, world: World, clock: Clock
) -> None:
    clock.after_send(43)  # the median scanner start after delivery
    assert click(client, world.message_id, 0, ARTICLE_0, headers=UA) == 302
    assert [f[1] for f in flags(engine)] == [True]  # early and unopened: the weak rule
    clock.after_send(44)
    click(client, world.message_id, 1, ARTICLE_1, headers=UA)
    clock.after_send(45)
    assert honeypot(client, world.message_id) == 200
    assert flags(engine) == [
        ("click", True, "early-unopened"),
        ("click", True, "early-unopened"),
        ("honeypot", True, "honeypot"),
    ]


def test_a_late_honeypot_burst_is_caught_and_the_readers_later_click_is_not(
    client: TestClient, engine: Engine, world: World, clock: Clock
) -> None:
    clock.after_send(600)  # a scanner re-checking later: no early rule
    click(client, world.message_id, 0, ARTICLE_0, headers=UA)
    assert flags(engine) == [("click", False, None)]
    clock.after_send(603)
    honeypot(client, world.message_id)
    clock.after_send(7200)  # the reader, two hours later
    click(client, world.message_id, 1, ARTICLE_1, headers=UA)
    assert flags(engine) == [
        ("click", True, "honeypot"),
        ("honeypot", True, "honeypot"),
        ("click", False, None),
    ]


def test_three_links_within_seconds_are_a_link_burst(
    client: TestClient, engine: Engine, world: World, clock: Clock
) -> None:
    for n, (slot, url) in enumerate(
        [(0, ARTICLE_0), (1, ARTICLE_1), (None, "https://example.com/c")]
    ):
        clock.after_send(3600 + n)
        click(client, world.message_id, slot, url, headers=UA)
    assert flags(engine) == [("click", True, "link-burst")] * 3


def test_a_reader_who_opens_then_clicks_two_links_stays_human(
    client: TestClient, engine: Engine, world: World, clock: Clock
) -> None:
    clock.after_send(50)
    token = tokens.sign_open(secret_key=SECRET, message_id=world.message_id)
    client.get(f"/t/o/{token}.gif", headers=UA)
    clock.after_send(70)
    click(client, world.message_id, 0, ARTICLE_0, headers=UA)
    clock.after_send(75)
    click(client, world.message_id, 0, ARTICLE_0, headers=UA)  # a double click: one link
    clock.after_send(160)
    click(client, world.message_id, 1, ARTICLE_1, headers=UA)
    assert flags(engine) == [("open", False, None)] + [("click", False, None)] * 3


def test_head_and_prefetch_requests_are_machine(
    client: TestClient, engine: Engine, world: World, clock: Clock
) -> None:
    clock.after_send(7200)
    assert click(client, world.message_id, 0, ARTICLE_0, method="HEAD", headers=UA) == 302
    clock.after_send(7300)
    prefetch = UA | {"Sec-Purpose": "prefetch;prerender"}
    response_code = click(client, world.message_id, 0, ARTICLE_0, headers=prefetch)
    assert response_code == 302
    token = tokens.sign_open(secret_key=SECRET, message_id=world.message_id)
    assert client.head(f"/t/o/{token}.gif", headers=UA).status_code == 200
    assert flags(engine) == [
        ("click", True, "head-request"),
        ("click", True, "prefetch"),
        ("open", True, "head-request"),
    ]


def test_a_bad_honeypot_token_records_nothing(
    client: TestClient, engine: Engine, world: World
) -> None:
    assert client.get("/t/h/garbage").status_code == 400
    wrong = tokens.sign_open(secret_key=SECRET, message_id=world.message_id)
    assert client.get(f"/t/h/{wrong}").status_code == 400
    assert events(engine) == []
