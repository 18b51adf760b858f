"""A minimal in-process HTTP client for an ASGI app: what a server hands the app, nothing more.

The simulated readers make hundreds of thousands of requests; ``httpx.ASGITransport`` spent
more CPU building and parsing its request and response models (URL parsing, header
normalisation, cookie extraction) than the tracking app spent answering. This client builds
the same ASGI scope (the headers a browser-like client sends, ``host`` first, the body as one
``http.request`` message) and keeps only the response's status and headers, so the app and its
middleware see exactly what ``httpx`` (or uvicorn in front of a real browser) gives them.
No cookies are kept: every request is a different reader's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

DEFAULT_HEADERS = (
    (b"accept", b"*/*"),
    (b"accept-encoding", b"gzip, deflate"),
    (b"connection", b"keep-alive"),
)


@dataclass(frozen=True)
class Response:
    """The status and headers the app answered with (the body is read and dropped)."""

    status_code: int
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)


def build_scope(method: str, url: str, headers: Mapping[str, str]) -> dict[str, Any]:
    """The ASGI HTTP scope of one request to an absolute `url` (as ``httpx`` builds it)."""
    parts = urlsplit(url)
    scheme = parts.scheme or "http"
    host = parts.hostname or "localhost"
    netloc = host if parts.port is None else f"{host}:{parts.port}"
    raw = [(b"host", netloc.encode("ascii")), *DEFAULT_HEADERS]
    raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method.upper(),
        "headers": raw,
        "scheme": scheme,
        "path": unquote(parts.path or "/"),
        "raw_path": (parts.path or "/").encode("ascii"),
        "query_string": parts.query.encode("ascii"),
        "server": (host, parts.port),  # None: the scheme's default port, as httpx has it
        "client": ("127.0.0.1", 123),
        "root_path": "",
    }


async def request(
    app: Any, method: str, url: str, *, headers: Mapping[str, str], body: bytes = b""
) -> Response:
    """Make one request to `app` and wait for its whole response."""
    if body:
        headers = {**headers, "content-length": str(len(body))}
    scope = build_scope(method, url, headers)
    done = asyncio.Event()
    sent_body = False
    status: list[int] = []
    answer: list[list[tuple[bytes, bytes]]] = []

    async def receive() -> dict[str, Any]:
        nonlocal sent_body
        if not sent_body:
            sent_body = True
            return {"type": "http.request", "body": body, "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: Mapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status.append(int(message["status"]))
            answer.append(list(message.get("headers", [])))
        elif message["type"] == "http.response.body" and not message.get("more_body", False):
            done.set()

    await app(scope, receive, send)
    if not status:
        raise RuntimeError(f"{method} {url}: the app sent no response")
    return Response(status[0], answer[0])
