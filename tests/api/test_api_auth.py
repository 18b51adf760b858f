"""API keys: Bearer auth, scopes, hashing at rest, last use, rate limits, OpenAPI and /docs, CLI."""

from __future__ import annotations

import logging
import os
from datetime import timedelta
from pathlib import Path

import pytest
from api_keys import bearer, interactions, make_key
from api_world import Clock, World
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from typer.testing import CliRunner

from newsletter import cli
from newsletter.store import apikeys

BODY = {
    "events": [
        {"subscriber_key": "u1", "item_key": "a0", "kind": "view", "occurred_at": "2026-11-01"}
    ]
}


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer "},
        {"Authorization": "Bearer nl_not-a-real-key"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "nl_missing-scheme"},
    ],
)
def test_an_unauthenticated_call_is_401_and_records_nothing(
    client: TestClient, engine: Engine, world: World, headers: dict[str, str]
) -> None:
    make_key(engine)
    response = client.post("/api/events", json=BODY, headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert "Bearer" in response.json()["detail"] or "unknown" in response.json()["detail"]
    put = client.put("/api/subscribers/u1", json={"email": "a@example.com"}, headers=headers)
    assert put.status_code == 401
    assert interactions(engine) == []
    with engine.connect() as c:
        assert c.execute(text("select count(*) from subscriber")).scalar() == 1  # the world's


def test_keys_are_hashed_at_rest_revocable_and_record_their_last_use(
    client: TestClient, engine: Engine, world: World, clock: Clock
) -> None:
    key = make_key(engine, "site")
    with engine.connect() as c:
        dump = " ".join(str(v) for row in c.execute(text("select * from api_key")) for v in row)
    assert key not in dump and apikeys.hash_key(key) in dump
    assert apikeys.key_by_name(engine, name="site").last_used_at is None  # type: ignore[union-attr]
    client.put("/api/subscribers/u1", json={"email": "a@example.com"}, headers=bearer(key))
    assert apikeys.key_by_name(engine, name="site").last_used_at == clock.now  # type: ignore[union-attr]
    assert apikeys.revoke_key(engine, name="site", now=clock.now)
    response = client.put("/api/subscribers/u1", json={"name": "x"}, headers=bearer(key))
    assert response.status_code == 401


def test_the_key_never_reaches_the_log(
    client: TestClient, engine: Engine, world: World, caplog: pytest.LogCaptureFixture
) -> None:
    key = make_key(engine, "site")
    with caplog.at_level(logging.DEBUG):
        client.post("/api/events", json=BODY, headers=bearer(key))
        client.post("/api/events", json=BODY, headers=bearer(key + "x"))
        client.delete("/api/subscribers/u1", headers=bearer(key))  # 403: names the prefix only
    assert key not in caplog.text
    detail = client.delete("/api/subscribers/u1", headers=bearer(key)).json()["detail"]
    assert key not in detail and key[:10] in detail


def test_each_key_has_its_own_rate_limit_that_refills(
    client: TestClient, engine: Engine, world: World, clock: Clock
) -> None:
    slow = make_key(engine, "slow", rate_limit=3)
    other = make_key(engine, "other", rate_limit=3)
    post = client.post
    codes = [post("/api/events", json=BODY, headers=bearer(slow)).status_code for _ in range(4)]
    assert codes == [207, 207, 207, 429]  # 207: u1 does not exist, the row is rejected
    limited = client.post("/api/events", json=BODY, headers=bearer(slow))
    assert limited.headers["retry-after"] == "20" and "3 requests per minute" in limited.text
    assert client.post("/api/events", json=BODY, headers=bearer(other)).status_code == 207
    clock.now += timedelta(seconds=20)  # one request's worth refills
    assert client.post("/api/events", json=BODY, headers=bearer(slow)).status_code == 207
    assert client.post("/api/events", json=BODY, headers=bearer(slow)).status_code == 429


def test_tracking_routes_stay_public(client: TestClient, world: World) -> None:
    assert client.get("/healthz").status_code == 200
    assert client.get("/t/o/garbage.gif").status_code == 200  # the pixel, no key needed


def test_openapi_documents_the_api_and_its_bearer_auth(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert {
        "/api/events",
        "/api/subscribers/{key}",
        "/api/items/{key}",
        "/api/segment/track",
        "/api/segment/identify",
        "/api/segment/batch",
    } <= set(spec["paths"])
    assert not any(p.startswith(("/t/", "/u/", "/p/", "/v/")) for p in spec["paths"])
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    post = spec["paths"]["/api/events"]["post"]
    assert {"200", "207", "401", "429"} <= set(post["responses"])
    batch = spec["components"]["schemas"]["RawBatch"]
    assert batch["properties"]["events"]["maxItems"] == 1000


def test_docs_page_serves_swagger_ui_from_this_server(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200 and "/openapi.json" in page.text
    assert "cdn." not in page.text and "/docs/assets/swagger-ui-bundle.js" in page.text
    script = client.get("/docs/assets/swagger-ui-bundle.js")
    assert script.status_code == 200 and "SwaggerUIBundle" in script.text[:2000]
    assert client.get("/docs/assets/../app.py").status_code == 404


def test_apikey_cli_creates_lists_and_revokes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in list(os.environ):
        if name.startswith("NEWSLETTER_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    made = runner.invoke(cli.app, ["apikey", "create", "site", "--scope", "admin"])
    assert made.exit_code == 0, made.output
    key = made.output.strip().splitlines()[-1]
    assert key.startswith("nl_") and len(key) > 40
    listed = runner.invoke(cli.app, ["apikey", "list"])
    assert "site" in listed.output and "admin" in listed.output and "never" in listed.output
    assert key not in listed.output and key[:10] in listed.output
    twice = runner.invoke(cli.app, ["apikey", "create", "site"])
    assert twice.exit_code == 2 and "already exists" in twice.output
    bad = runner.invoke(cli.app, ["apikey", "create", "x", "--scope", "root"])
    assert bad.exit_code == 2 and "unknown scope" in bad.output and "Traceback" not in bad.output
    assert runner.invoke(cli.app, ["apikey", "revoke", "site"]).exit_code == 0
    assert "revoked" in runner.invoke(cli.app, ["apikey", "list"]).output
    again = runner.invoke(cli.app, ["apikey", "revoke", "site"])
    assert again.exit_code == 1 and "no live API key" in again.output
