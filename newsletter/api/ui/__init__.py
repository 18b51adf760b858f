"""The marketer web UI under /admin: server-rendered pages, a little plain JavaScript, no build.

``mount(app, settings=..., engine=..., clock=...)`` adds the routes (``routes_*``), the static
files (``static/``: CSS, the scripts, vendored CodeMirror) and the sign-in handling to the
FastAPI app that ``newsletter serve`` runs. Pages call ``newsletter.admin`` services only.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from fastapi import FastAPI, Request
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from newsletter.config import Settings
from newsletter.db import Engine


def mount(
    app: FastAPI, *, settings: Settings, engine: Engine, clock: Callable[[], datetime]
) -> None:
    """Serve the web UI from `app`: /admin pages and /admin/static files."""
    from newsletter.api.ui import routes_auth, routes_campaigns, routes_people, routes_templates
    from newsletter.api.ui.web import HERE, Admin, NotSignedIn, error_page, not_signed_in

    app.state.admin = Admin(settings=settings, engine=engine, clock=clock)
    for module in (routes_auth, routes_templates, routes_campaigns, routes_people):
        app.include_router(module.router, include_in_schema=False)  # pages, not the API
    app.mount("/admin/static", StaticFiles(directory=HERE / "static"), name="admin-static")

    @app.exception_handler(NotSignedIn)
    def refuse(request: Request, exc: NotSignedIn) -> Response:
        return not_signed_in(request)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        if request.url.path.startswith("/admin"):
            return error_page(request, exc.status_code, str(exc.detail))
        from fastapi.exception_handlers import http_exception_handler

        return await http_exception_handler(request, exc)
