"""Request bodies are bounded before they are read, form tokens are verified before the body,
the preference form is same-origin with an anti-forgery value, and the access log shows token
digests: in process (ASGI and TestClient) and against a real uvicorn process (RSS measured)."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_world import SECRET, World, subscriber
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from newsletter import tokens
from newsletter.api.guard import FORM_MAX_BODY, BodyLimit, body_limit, redact_path
from testsupport import STRONG_SECRET

FORM = {"content-type": "application/x-www-form-urlencoded"}
MB = 1024 * 1024


def _pref(message_id: int | str, key: str = SECRET) -> str:
    return f"/p/{tokens.sign_preferences(secret_key=key, message_id=message_id)}"


def _unsub(message_id: int | str, key: str = SECRET) -> str:
    return f"/u/{tokens.sign_unsubscribe(secret_key=key, message_id=message_id)}"


# ---- the ASGI middleware on its own: what it reads, what it answers ----


class _Inner:
    """An app that reads the whole body, as a form route does."""

    def __init__(self) -> None:
        self.called = False

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.called = True
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def _call(path: str, *, headers: list[tuple[bytes, bytes]], chunks: int, size: int) -> dict:
    """Drive BodyLimit with a body of `chunks` x `size` bytes; count what it pulled."""
    inner, sent, pulled = _Inner(), [], [0]

    async def receive() -> dict:
        pulled[0] += 1
        return {"type": "http.request", "body": b"x" * size, "more_body": pulled[0] < chunks}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": path, "headers": headers}
    asyncio.run(BodyLimit(inner, secret_key=SECRET)(scope, receive, send))  # type: ignore[arg-type]
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    return {"status": status, "pulled": pulled[0], "inner": inner.called}


def test_a_declared_length_over_the_limit_is_413_without_reading_a_byte() -> None:
    length = str(100 * MB).encode()
    for path in [_pref(1), _unsub(1), "/t/c/x", "/healthz", "/v/x", "/anything"]:
        result = _call(path, headers=[(b"content-length", length)], chunks=100, size=MB)
        assert result == {"status": 413, "pulled": 0, "inner": False}, path


def test_a_chunked_body_stops_at_the_limit_with_413() -> None:
    result = _call(_pref(1), headers=[], chunks=1600, size=64 * 1024)  # 100 MB on offer
    assert result["status"] == 413 and result["pulled"] == 2  # 64 KB, then one chunk over
    small = _call(_pref(1), headers=[], chunks=4, size=1024)
    assert small == {"status": 200, "pulled": 4, "inner": True}


def test_a_forged_form_token_is_refused_before_its_body_is_read() -> None:
    for path in ["/p/garbage", "/u/garbage", _pref(1, key="another-key"), _pref(1)[:-2]]:
        result = _call(path, headers=[(b"content-length", b"1000")], chunks=1, size=1000)
        assert result == {"status": 400, "pulled": 0, "inner": False}, path


def test_route_limits_are_documented_numbers() -> None:
    assert body_limit("/p/x") == body_limit("/u/x") == FORM_MAX_BODY == 64 * 1024
    assert body_limit("/api/events") == MB
    assert body_limit("/t/c/x") == 64 * 1024


# ---- the app: forms, origin and anti-forgery value ----


def test_an_oversized_form_changes_nothing(
    client: TestClient, engine: Engine, world: World
) -> None:
    body = b"List-Unsubscribe=One-Click&pad=" + b"x" * (FORM_MAX_BODY + 1)
    response = client.post(_unsub(world.message_id), headers=FORM, content=body)
    assert response.status_code == 413
    assert subscriber(engine, world.subscriber_id).status == "active"


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("/api/events", "application/json"),
        ("/api/subscribers/u1", "application/json"),
        ("/admin/login", "application/x-www-form-urlencoded"),
    ],
)
def test_a_streamed_body_over_the_limit_is_413_where_fastapi_reads_the_body(
    client: TestClient, path: str, kind: str
) -> None:
    """No Content-Length (chunked): the limit is found while FastAPI itself reads a JSON or
    form body, and FastAPI turns any error raised there into a 400; the answer must be 413."""
    piece = b" " * (64 * 1024)
    body = iter([piece] * (2 * MB // len(piece) + 1))  # one piece over the 2 MB on offer
    method = "PUT" if path.startswith("/api/subscribers/") else "POST"
    response = client.request(method, path, headers={"content-type": kind}, content=body)
    assert response.status_code == 413, response.text
    assert "at most 1024 KB" in response.text


def _csrf(client: TestClient, path: str) -> str:
    page = client.get(path).text
    return re.search(r'name="csrf" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]


def test_a_cross_site_preferences_post_is_refused(
    client: TestClient, engine: Engine, world: World
) -> None:
    path = _pref(world.message_id)
    body = f"frequency=paused&csrf={_csrf(client, path)}"
    for origin in ["https://evil.example", "null", "http://news.example.com"]:
        response = client.post(path, headers={**FORM, "origin": origin}, content=body)
        assert response.status_code == 403, origin
    assert subscriber(engine, world.subscriber_id).frequency == "weekly"
    own = {**FORM, "origin": "https://news.example.com"}
    assert client.post(path, headers=own, content=body).status_code == 200
    assert subscriber(engine, world.subscriber_id).frequency == "paused"


def test_a_preferences_post_needs_the_pages_anti_forgery_value(
    client: TestClient, engine: Engine, world: World, clock: Any
) -> None:
    path = _pref(world.message_id)
    now = int(clock.now.timestamp())
    foreign = tokens.sign_form(
        secret_key=SECRET, token=_pref(world.message_id + 1)[3:], issued_at=now
    )
    for body in [
        "frequency=paused",
        "frequency=paused&csrf=",
        f"frequency=paused&csrf={_csrf(client, path)}x",
        f"frequency=paused&csrf={foreign}",
    ]:
        assert client.post(path, headers=FORM, content=body).status_code == 403, body
    stale = _csrf(client, path)
    clock.now = clock.now.replace(year=clock.now.year + 1)
    response = client.post(path, headers=FORM, content=f"frequency=paused&csrf={stale}")
    assert response.status_code == 403 and "Reload" in response.text
    assert subscriber(engine, world.subscriber_id).frequency == "weekly"


def test_access_log_paths_carry_digests_not_tokens() -> None:
    token = tokens.sign_unsubscribe(secret_key=SECRET, message_id=5)
    assert redact_path(f"/u/{token}") == f"/u/~{tokens.token_digest(token)}"
    assert redact_path(f"/t/o/{token}.gif") == f"/t/o/~{tokens.token_digest(token)}.gif"
    assert redact_path(f"/p/{token}?x=1") == f"/p/~{tokens.token_digest(token)}?x=1"
    assert redact_path("/healthz") == "/healthz"


# ---- a real server process: 100 MB bodies, memory, access log ----


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _peak_rss(pid: int) -> int:
    """The process's peak resident set size (VmHWM) in bytes."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) * 1024  # type: ignore[union-attr]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env |= {
        "NEWSLETTER_DATABASE_URL": f"sqlite:///{tmp_path / 'guard.db'}",
        "NEWSLETTER_SECRET_KEY": STRONG_SECRET,
        "NEWSLETTER_CONFIG": str(tmp_path / "absent.toml"),
    }
    port = _free_port()
    command = [sys.executable, "-m", "newsletter", "serve", "--port", str(port)]
    log = (tmp_path / "server.log").open("wb")
    process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=log, stderr=log)
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
            break
        except httpx.TransportError:
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail((tmp_path / "server.log").read_text())
            time.sleep(0.2)
    yield port, process
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)
    log.close()


def _post(port: int, path: str, total: int, *, chunked: bool) -> int:
    """POST `total` bytes (streamed, never held in memory); the status the server answered."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {total}"
        head = f"POST {path} HTTP/1.1\r\nHost: x\r\n{FORM_HEADER}{framing}\r\n\r\n"
        sock.sendall(head.encode())
        piece = b"a" * MB
        sent = 0
        try:
            while sent < total:
                sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
                sent += len(piece)
            if chunked:
                sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass  # the server answered and closed: the rest is never read
        try:
            reply = sock.recv(200)
        except OSError:
            return 413 if sent < total else 0
    match = re.match(rb"HTTP/1\.1 (\d{3})", reply)
    return int(match.group(1)) if match else 0


FORM_HEADER = "Content-Type: application/x-www-form-urlencoded\r\n"


@pytest.mark.slow
def test_100_mb_posts_get_413_and_server_memory_grows_under_10_mb(
    server: tuple[int, subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    port, process = server
    prefs = tokens.sign_preferences(secret_key=STRONG_SECRET, message_id=1)
    unsub = tokens.sign_unsubscribe(secret_key=STRONG_SECRET, message_id=1)
    for path in (f"/p/{prefs}", f"/u/{unsub}", "/healthz"):  # warm up every code path
        httpx.post(f"http://127.0.0.1:{port}{path}", headers=FORM, content=b"a=1", timeout=10)
    before = _peak_rss(process.pid)
    # every family of routes: token forms, tracking, the APIs, ESP webhooks, the admin UI
    routes = [f"/p/{prefs}", f"/u/{unsub}", "/api/events", "/admin/login", "/t/c/whatever"]
    routes += ["/v/x", "/healthz", "/api/subscribers/u1", "/api/segment/batch"]
    routes += ["/api/webhooks/sendgrid", "/admin/templates/digest/save"]
    statuses = [_post(port, path, 100 * MB, chunked=False) for path in routes]
    statuses += [_post(port, path, 100 * MB, chunked=True) for path in routes[:4]]
    grown = _peak_rss(process.pid) - before
    assert statuses == [413] * len(statuses)
    print(f"peak RSS growth over {len(statuses)} x 100 MB POSTs: {grown / MB:.2f} MB")
    assert grown < 10 * MB, f"peak RSS grew by {grown / MB:.1f} MB"
    log = (tmp_path / "server.log").read_text()
    assert prefs not in log and unsub not in log
    assert f"/p/~{tokens.token_digest(prefs)}" in log
