"""End to end: render the real message, then follow its own links through the service."""

from __future__ import annotations

import re

from api_world import ARTICLE_1, World, events, subscriber, suppressions
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from newsletter.config import Settings
from newsletter.render.compile import TemplateCache, load_template_source
from newsletter.render.render import RenderedMessage
from newsletter.render.stored import render_stored

CHROME = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0"


def test_every_link_of_a_rendered_message_is_answered(
    client: TestClient, engine: Engine, world: World, settings: Settings, clock
) -> None:
    compiled = TemplateCache().get(load_template_source("digest"))
    rendered = render_stored(
        engine, message_ids=[world.message_id], compiled=compiled, settings=settings, now=clock.now
    )[world.message_id]
    assert isinstance(rendered, RenderedMessage)
    base = settings.base_url
    local = [
        u.removeprefix(base) for u in re.findall(rf'{re.escape(base)}/[^"\s<>]+', rendered.html)
    ]
    clicks = [p for p in local if p.startswith("/t/c/")]
    pixel = next(p for p in local if p.startswith("/t/o/"))

    locations = {client.get(p, headers={"user-agent": CHROME}).headers["location"] for p in clicks}
    assert ARTICLE_1 in locations
    assert client.get(pixel, headers={"user-agent": CHROME}).content.startswith(b"GIF89a")
    for path in (p for p in local if p.startswith(("/p/", "/v/"))):
        assert client.get(path).status_code == 200

    header = dict(rendered.headers)["List-Unsubscribe"]
    https = re.search(r"<(https://[^>]+)>", header)
    assert https is not None and dict(rendered.headers)["List-Unsubscribe-Post"]
    response = client.post(
        https.group(1).removeprefix(base),
        content=b"List-Unsubscribe=One-Click",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200
    assert subscriber(engine, world.subscriber_id).status == "unsubscribed"
    assert [r.reason for r in suppressions(engine)] == ["unsubscribed"]
    kinds = {e.kind for e in events(engine)}
    assert kinds == {"click", "open", "unsubscribe"}
    slotted = {e.item_id for e in events(engine, "click") if e.slot_position is not None}
    assert slotted == set(world.item_ids)
