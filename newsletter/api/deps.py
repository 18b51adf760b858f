"""What a request handler needs: the app's settings, engine, clock and template cache; the
client's user agent and IP; a parsed form body (without python-multipart)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs

from fastapi import Request
from sqlalchemy import Engine

from newsletter.config import Settings
from newsletter.render.compile import TemplateCache
from newsletter.track import record
from newsletter.track.bots import is_prefetch
from newsletter.track.buffer import EventBuffer, Pending

MAX_FORM_BYTES = 64 * 1024


@dataclass(frozen=True)
class Tracking:
    """The tracking service's collaborators, built once by ``create_app`` (no globals)."""

    settings: Settings
    engine: Engine
    clock: Callable[[], datetime]
    templates: TemplateCache = field(default_factory=TemplateCache)
    buffer: EventBuffer | None = None  # None: clicks and opens are written at once

    def now(self) -> datetime:
        """The current time from the injected clock."""
        return self.clock()

    def record_click(self, **facts: Any) -> bool:
        """Record a click: queued in the buffer when there is one, else written now."""
        key = record.message_key(facts["message_id"])
        if self.buffer is None or key is None:
            return record.record_click(self.engine, **facts)
        return self.buffer.add(
            Pending(
                "click",
                key,
                facts["now"],
                facts["user_agent"],
                facts["ip"],
                facts.get("slot"),
                facts.get("url"),
                facts.get("method", "GET"),
                facts.get("prefetch", False),
            )
        )

    def record_open(self, **facts: Any) -> bool:
        """Record an open: queued in the buffer when there is one, else written now."""
        key = record.message_key(facts["message_id"])
        if self.buffer is None or key is None:
            return record.record_open(self.engine, **facts)
        pending = Pending("open", key, facts["now"], facts["user_agent"], facts["ip"])
        return self.buffer.add(pending)


@dataclass(frozen=True)
class Client:
    """Who is asking: the user agent and the IP address (as the server saw them)."""

    user_agent: str | None
    ip: str | None
    prefetch: bool = False  # the request says it is a prefetch or preview (bots.is_prefetch)


def tracking(request: Request) -> Tracking:
    """The app's Tracking object (FastAPI dependency)."""
    state: Tracking = request.app.state.tracking
    return state


def client(request: Request) -> Client:
    """The request's user agent and client IP (uvicorn applies trusted X-Forwarded-For)."""
    host = request.client.host if request.client else None
    prefetch = is_prefetch(request.headers)
    return Client(user_agent=request.headers.get("user-agent") or None, ip=host, prefetch=prefetch)


async def form_fields(request: Request) -> dict[str, list[str]]:
    """An application/x-www-form-urlencoded body as {name: [values]} (empty when not a form)."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        return {}
    try:
        return parse_qs(body.decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError:
        return {}
