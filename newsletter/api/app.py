"""The tracking web service: ``create_app(settings=..., engine=..., clock=None)`` builds it.

Routes (``newsletter.api.routes.tracking``): ``GET /t/c/{token}`` click redirect, ``GET
/t/o/{token}.gif`` open pixel, ``GET|POST /u/{token}`` unsubscribe (POST = RFC 8058 one-click),
``GET|POST /p/{token}`` preferences, ``GET /v/{token}`` view in browser, ``GET /t/h/{token}``
honeypot, ``GET /healthz``; the marketer web UI under ``/admin`` (``newsletter.api.ui``).
The API (``newsletter.api.service``): ``/api/...`` with API keys, ``/openapi.json``, ``/docs``.
Every request body is bounded by ``newsletter.api.guard.BodyLimit`` before it is read; with
the event buffer on, click and pixel GETs are answered by ``newsletter.api.hotpath.HotPath``
(the same functions as the routes, without FastAPI's routing and thread pool).
No module-level app and no globals: everything the routes need hangs off ``app.state``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from newsletter.api import pages, ui
from newsletter.api.deps import Tracking
from newsletter.api.guard import AccessLogRedactor, BodyLimit
from newsletter.api.hotpath import HotPath
from newsletter.api.routes import tracking
from newsletter.api.service import add_api
from newsletter.config import Settings
from newsletter.db import Engine, now_utc
from newsletter.runtime import tune_gc
from newsletter.track.buffer import EventBuffer

log = logging.getLogger(__name__)


def _event_buffer(settings: Settings, engine: Engine) -> EventBuffer | None:
    """The tracking event buffer the settings ask for (None when flushing is off)."""
    if settings.track_flush_rows <= 0:
        return None
    return EventBuffer(
        engine,
        flush_rows=settings.track_flush_rows,
        flush_ms=settings.track_flush_ms,
        max_rows=settings.track_buffer_max,
    )


def create_app(
    *,
    settings: Settings,
    engine: Engine,
    clock: Callable[[], datetime] | None = None,
    buffered: bool = False,
) -> FastAPI:
    """A FastAPI app answering the links our emails contain, the HTTP API and the web UI
    (clock injectable for tests).

    ``buffered``: clicks and opens go through an ``EventBuffer`` (``newsletter.track.buffer``)
    that the app's lifespan starts and, at shutdown, flushes.
    """
    buffer = _event_buffer(settings, engine) if buffered else None

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if buffer is not None:
            buffer.start()
        yield
        if buffer is not None:
            buffer.close()

    app = FastAPI(
        title="newsletter",
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
        lifespan=lifespan,
    )
    app.state.tracking = Tracking(
        settings=settings, engine=engine, clock=clock or now_utc, buffer=buffer
    )
    app.include_router(tracking.router, include_in_schema=False)
    add_api(app)
    ui.mount(app, settings=settings, engine=engine, clock=clock or now_utc)
    app.add_middleware(HotPath, tracking=app.state.tracking)
    app.add_middleware(BodyLimit, secret_key=settings.secret_key)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        """Liveness probe for load balancers and the CLI test."""
        return {"status": "ok"}

    @app.exception_handler(Exception)
    def unexpected(request: Request, exc: Exception) -> Response:
        """Any unexpected failure: a plain page, details only in the log."""
        route = getattr(request.scope.get("route"), "path", "?")  # the pattern: no token
        log.error("%s %s failed: %r", request.method, route, exc)
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": "internal error; see the server log"}, 500)
        return pages.server_error()

    return app


def run_server(*, settings: Settings, engine: Engine, host: str, port: int) -> None:
    """Serve the app with uvicorn until interrupted (X-Forwarded-For trusted from loopback);
    the access log shows token digests, never tokens."""
    import uvicorn

    app = create_app(settings=settings, engine=engine, buffered=True)
    tune_gc(freeze=True)  # full collections were the tracking service's p99 (newsletter.runtime)
    config = uvicorn.Config(app, host=host, port=port)
    logging.getLogger("uvicorn.access").addFilter(AccessLogRedactor())  # after Config's logging
    uvicorn.Server(config).run()
