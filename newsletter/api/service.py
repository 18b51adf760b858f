"""The HTTP API on the tracking app: events, upserts, erasure, Segment calls, ESP webhooks, docs.

``add_api(app)`` registers the routers and the state they share (``app.state.api``: the rate
limiter and the events hook, which a trigger engine replaces to evaluate arriving events) and
``app.state.sns_fetch`` (None: fetch Amazon SNS certificates over HTTPS; tests put a fake).
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from newsletter.api import docs
from newsletter.api.auth import ApiState, RateLimiter
from newsletter.api.routes import events, machine, segment, webhooks
from newsletter.track.ingest import evaluate_triggers


def one_line(error: RequestValidationError) -> str:
    """The first validation problem as one sentence naming the field (``body.email: ...``)."""
    first = error.errors()[0] if error.errors() else {"loc": (), "msg": "invalid request"}
    where = ".".join(str(p) for p in first.get("loc", ()))
    more = len(error.errors()) - 1
    tail = f" (and {more} more problem{'s' if more > 1 else ''})" if more > 0 else ""
    return f"{where or 'request'}: {first.get('msg', 'invalid')}{tail}"


async def _invalid(request: Request, exc: Exception) -> Response:
    """API requests that fail validation get one line naming the field (HTML routes as before)."""
    assert isinstance(exc, RequestValidationError)
    if request.url.path.startswith("/api/"):
        return JSONResponse({"detail": one_line(exc)}, status_code=422)
    return await request_validation_exception_handler(request, exc)


def add_api(app: FastAPI) -> None:
    """Register the API routers and their shared state on ``app``."""
    app.add_exception_handler(RequestValidationError, _invalid)
    app.state.api = ApiState(limiter=RateLimiter(), on_events_stored=evaluate_triggers)
    app.state.sns_fetch = None
    app.include_router(events.router)
    app.include_router(segment.router)
    app.include_router(webhooks.router)
    app.include_router(docs.router)
    app.include_router(machine.router)
