"""The simulator's ASGI client gives an app what ``httpx.ASGITransport`` gives it."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from newsletter.simulate import asgi


class Recorder:
    """An ASGI app that keeps the scope and body of each request and answers 302."""

    def __init__(self) -> None:
        self.seen: list[tuple[dict[str, Any], bytes]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.seen.append((dict(scope), body))
        await send({"type": "http.response.start", "status": 302, "headers": [(b"x-a", b"1")]})
        await send({"type": "http.response.body", "body": b"moved"})


CASES = [
    ("GET", "https://news.example.com/t/c/abc.DEF-1_x", {"user-agent": "Mozilla/5.0"}, b""),
    (
        "GET",
        "http://127.0.0.1:8000/t/o/tok%2Fen.gif?a=1&b=%20",
        {"x-forwarded-for": "1.2.3.4"},
        b"",
    ),
    (
        "POST",
        "https://news.example.com/u/tok",
        {"content-type": "application/x-www-form-urlencoded", "user-agent": "UA"},
        b"List-Unsubscribe=One-Click",
    ),
]


async def _with_httpx(app: Recorder) -> list[int]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, follow_redirects=False) as client:
        out = []
        for method, url, headers, body in CASES:
            r = await client.request(method, url, headers=headers, content=body or None)
            out.append(r.status_code)
        return out


async def _with_ours(app: Recorder) -> list[int]:
    out = []
    for method, url, headers, body in CASES:
        r = await asgi.request(app, method, url, headers=headers, body=body)
        assert r.headers == [(b"x-a", b"1")]
        out.append(r.status_code)
    return out


def _comparable(scope: dict[str, Any]) -> dict[str, Any]:
    headers = sorted((k, v) for k, v in scope["headers"] if k != b"user-agent" or v != b"")
    headers = [(k, v) for k, v in headers if not v.startswith(b"python-httpx")]
    return {**scope, "headers": headers}


def test_the_app_sees_the_scope_and_body_httpx_would_send() -> None:
    theirs, ours = Recorder(), Recorder()
    assert asyncio.run(_with_httpx(theirs)) == [302, 302, 302]
    assert asyncio.run(_with_ours(ours)) == [302, 302, 302]
    for (a, body_a), (b, body_b) in zip(theirs.seen, ours.seen, strict=True):
        assert body_a == body_b
        encoding = {k: v for k, v in a["headers"]}.get(b"accept-encoding")
        b_headers = [(k, encoding if k == b"accept-encoding" else v) for k, v in b["headers"]]
        assert _comparable(a) == _comparable({**b, "headers": b_headers})
    assert ours.seen[1][0]["path"] == "/t/o/tok/en.gif"
    assert ours.seen[1][0]["query_string"] == b"a=1&b=%20"
    assert ours.seen[1][0]["server"] == ("127.0.0.1", 8000)
