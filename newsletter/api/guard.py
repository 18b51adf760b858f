"""Request bodies are bounded before anyone reads them; logs carry token digests, not tokens.

`BodyLimit` is pure ASGI middleware in front of the whole app. Every request body has a limit
per route (`ROUTE_LIMITS`, else `DEFAULT_MAX_BODY`): a ``Content-Length`` above it is answered
413 at once, without reading a byte; a chunked body is counted as it arrives and answered 413
the moment it passes the limit. On the token routes that take a form (``/u/``, ``/p/``) the
token is verified first, from the path alone, so a forged token never gets its body read.
`AccessLogRedactor` is a logging filter for uvicorn's access log that replaces every token in
a logged path by ``~`` and its digest (``newsletter.tokens.token_digest``).
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi.responses import JSONResponse, Response

from newsletter import tokens
from newsletter.api import pages

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

FORM_MAX_BODY = 64 * 1024  # the unsubscribe and preference forms
EVENTS_MAX_BODY = 1024 * 1024  # the events API (JSON batches of event rows)
API_MAX_BODY = 1024 * 1024  # every other /api/ route (upserts, Segment batches of 1,000 calls)
WEBHOOK_MAX_BODY = 5 * 1024 * 1024  # ESP webhooks (SendGrid posts events in batches)
ADMIN_MAX_BODY = 1024 * 1024  # the web UI's forms: four template parts of up to 100 KB each
DEFAULT_MAX_BODY = 64 * 1024  # every other route: none of them takes a body
ROUTE_LIMITS: tuple[tuple[str, int], ...] = (
    ("/u/", FORM_MAX_BODY),
    ("/p/", FORM_MAX_BODY),
    ("/api/events", EVENTS_MAX_BODY),
    ("/api/webhooks/", WEBHOOK_MAX_BODY),
    ("/api/", API_MAX_BODY),
    ("/admin/", ADMIN_MAX_BODY),
)
FORM_TOKENS: dict[str, Callable[..., tokens.TokenPayload]] = {
    "/u/": tokens.verify_unsubscribe,
    "/p/": tokens.verify_preferences,
}
TOKEN_PATH = re.compile(r"^(/t/c/|/t/o/|/t/h/|/u/|/p/|/v/)([^/?\s]+?)(\.gif)?(?=$|[/?\s])")


def body_limit(path: str) -> int:
    """The largest request body accepted on `path`, in bytes."""
    for prefix, limit in ROUTE_LIMITS:
        if path.startswith(prefix):
            return limit
    return DEFAULT_MAX_BODY


def too_large(limit: int, path: str = "") -> Response:
    """413: the body is over the route's limit (the connection is closed after it); JSON on
    the API, a page elsewhere."""
    detail = f"This address accepts at most {limit // 1024} KB."
    response: Response
    if path.startswith("/api/"):
        response = JSONResponse({"detail": detail}, status_code=413)
    else:
        response = pages.message("Request too large", detail, status=413)
    response.headers["Connection"] = "close"
    return response


class _BodyTooLarge(Exception):
    """Raised inside the app's receive() when a streamed body passes its limit."""


def _declared_length(scope: Scope) -> int | None:
    """The Content-Length header as a number (-1 when it is not one), None when absent."""
    for name, value in scope.get("headers") or ():
        if name == b"content-length":
            return int(value) if value.isdigit() else -1
    return None


class BodyLimit:
    """Pure ASGI middleware: bound every request body, verify form tokens before the body."""

    def __init__(self, app: ASGIApp, *, secret_key: str) -> None:
        self.app, self.secret_key = app, secret_key

    def _forged(self, scope: Scope) -> bool:
        """A POST to a form route whose token does not verify (checked from the path only)."""
        if scope.get("method") != "POST":
            return False
        path: str = scope.get("path", "")
        for prefix, verify in FORM_TOKENS.items():
            if path.startswith(prefix):
                try:
                    verify(path[len(prefix) :], secret_key=self.secret_key)
                except tokens.TokenError:
                    return True
        return False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = body_limit(scope.get("path", ""))
        declared = _declared_length(scope)
        if declared is not None and not 0 <= declared <= limit:
            await too_large(limit, scope.get("path", ""))(scope, receive, send)
            return
        if self._forged(scope):
            await pages.broken_link()(scope, receive, send)
            return
        received = 0
        started = refused = False

        async def bounded_receive() -> Message:
            # The 413 goes out here, before the app sees the error: FastAPI turns any error
            # raised while it reads a JSON or form body into its own 400, which is then dropped.
            nonlocal received, refused
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    if not started and not refused:
                        refused = True
                        await too_large(limit, scope.get("path", ""))(scope, receive, send)
                    raise _BodyTooLarge
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            if refused:
                return  # the 413 has been answered: nothing the app says after it goes out
            started = started or message["type"] == "http.response.start"
            await send(message)

        with contextlib.suppress(_BodyTooLarge):
            await self.app(scope, bounded_receive, watched_send)


def redact_path(path: str) -> str:
    """`path` with its token replaced by ``~`` and the token's digest (other paths unchanged)."""

    def digest(match: re.Match[str]) -> str:
        return f"{match.group(1)}~{tokens.token_digest(match.group(2))}{match.group(3) or ''}"

    return TOKEN_PATH.sub(digest, path, count=1)


class AccessLogRedactor(logging.Filter):
    """Rewrite uvicorn access-log records so no token reaches the log, only its digest."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], redact_path(args[2]), *args[3:])
        return True
