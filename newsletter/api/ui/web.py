"""What every web UI route shares: the page renderer and its headers, sign-in, roles, CSRF.

    ui(request) -> Admin                        # settings, engine, clock, preview cache
    user: SignedIn = Depends(viewer | editor | admin)   # 303 to /admin/login, or 401 for JSON
    form = await checked_form(request, user)    # the body, refused (403) without a valid token
    page(request, "name.html", user=user, **context) -> HTMLResponse

Pages are Jinja templates (autoescaped) served with a strict Content-Security-Policy: scripts
only from /admin/static, no inline script, no plugins, frames and forms only on this site.
Every POST must carry the session's CSRF token (form field ``csrf_token`` or header
``X-CSRF-Token``) and, when the browser sends one, an Origin of this site.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from fastapi import HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from newsletter.admin.accounts import SignedIn, allowed, session_for
from newsletter.admin.preview import PreviewInputs
from newsletter.config import Settings
from newsletter.db import Engine
from newsletter.models import Role

HERE = Path(__file__).resolve().parent
COOKIE = "nl_admin"
LOGIN_COOKIE = "nl_login"
MAX_BODY = 1_000_000  # four template parts of up to 100 KB each, form-encoded
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' https: http: data:; font-src 'self'; connect-src 'self'; "
    "frame-src 'self'; frame-ancestors 'self'; form-action 'self'; base-uri 'none'; "
    "object-src 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "Cache-Control": "no-store",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "SAMEORIGIN",
    "X-Robots-Tag": "noindex, nofollow",
}
_ENV = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(default=True),
    auto_reload=False,
    trim_blocks=True,
    lstrip_blocks=True,
)


@dataclass
class Admin:
    """The web UI's collaborators, built once by ``create_app`` (no globals)."""

    settings: Settings
    engine: Engine
    clock: Callable[[], datetime]
    inputs: PreviewInputs = field(default_factory=PreviewInputs)

    def now(self) -> datetime:
        return self.clock()

    @property
    def secure_cookies(self) -> bool:
        return self.settings.base_url.startswith("https://")


def ui(request: Request) -> Admin:
    """The app's Admin object (FastAPI dependency)."""
    state: Admin = request.app.state.admin
    return state


def wants_json(request: Request) -> bool:
    return request.url.path.startswith("/admin/api/") or "application/json" in request.headers.get(
        "accept", ""
    )


class NotSignedIn(Exception):
    """Raised by the role dependencies; answered with a redirect to sign-in (or a 401)."""


def current_user(request: Request) -> SignedIn | None:
    """The signed-in user of this request's session cookie, or None."""
    admin = ui(request)
    return session_for(admin.engine, token=request.cookies.get(COOKIE), now=admin.now())


def _role(needed: Role) -> Callable[[Request], SignedIn]:
    def dependency(request: Request) -> SignedIn:
        user = current_user(request)
        if user is None:
            raise NotSignedIn()
        if not allowed(user.role, needed):
            raise HTTPException(403, f"This needs the {needed.value} role; you are {user.role}.")
        return user

    dependency.__name__ = f"require_{needed.value}"
    return dependency


viewer = _role(Role.viewer)
editor = _role(Role.editor)
admin_role = _role(Role.admin)


def not_signed_in(request: Request) -> Response:
    """Refuse: a JSON 401 for API calls, else a redirect to the sign-in page."""
    if wants_json(request) or request.method != "GET":
        return JSONResponse({"error": "sign in first"}, status_code=401, headers=HEADERS)
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/admin/login?next={quote(target)}", status_code=303, headers=HEADERS)


def same_origin(request: Request, settings: Settings) -> bool:
    """True unless the browser says the request comes from another site (Origin header)."""
    origin = request.headers.get("origin")
    if not origin or origin == "null":
        return origin is None
    mine = {f"{request.url.scheme}://{request.url.netloc}"}
    base = urlsplit(settings.base_url)
    mine.add(f"{base.scheme}://{base.netloc}")
    return origin.rstrip("/") in mine


async def read_form(request: Request) -> dict[str, str]:
    """An urlencoded form body as {name: value} (first values; 413 when too large)."""
    body = await request.body()
    if len(body) > MAX_BODY:
        raise HTTPException(413, "The form is too large.")
    try:
        fields = parse_qs(body.decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError as exc:
        raise HTTPException(400, "The form is not UTF-8.") from exc
    return {k: v[0] for k, v in fields.items()}


async def read_json(request: Request) -> dict[str, Any]:
    """A JSON object body (400 when it is not one, 413 when too large)."""
    body = await request.body()
    if len(body) > MAX_BODY:
        raise HTTPException(413, "The request is too large.")
    try:
        data = json.loads(body or b"{}")
    except ValueError as exc:
        raise HTTPException(400, "The request body is not JSON.") from exc
    if not isinstance(data, dict):
        raise HTTPException(400, "The request body must be a JSON object.")
    return data


def _check_csrf(request: Request, user: SignedIn, sent: str | None) -> None:
    if not same_origin(request, ui(request).settings):
        raise HTTPException(403, "This request came from another site and was refused.")
    token = sent or request.headers.get("x-csrf-token") or ""
    if not hmac.compare_digest(token.encode(), user.csrf_token.encode()):
        raise HTTPException(403, "This form has expired. Reload the page and try again.")


async def checked_form(request: Request, user: SignedIn) -> dict[str, str]:
    """The form, after checking its CSRF token and Origin (403 otherwise)."""
    form = await read_form(request)
    _check_csrf(request, user, form.get("csrf_token"))
    return form


async def checked_json(request: Request, user: SignedIn) -> dict[str, Any]:
    """A JSON body, after checking the X-CSRF-Token header and Origin (403 otherwise)."""
    data = await read_json(request)
    _check_csrf(request, user, None)
    return data


def page(
    request: Request,
    template: str,
    *,
    user: SignedIn | None,
    status: int = 200,
    **context: Any,
) -> HTMLResponse:
    """Render one UI page with the security headers."""
    html = _ENV.get_template(template).render(
        user=user,
        path=request.url.path,
        can=lambda role: user is not None and allowed(user.role, Role(role)),
        **context,
    )
    return HTMLResponse(html, status_code=status, headers=HEADERS)


def see_other(url: str, *, flash: str | None = None) -> RedirectResponse:
    """303 to `url` (after a POST), with an optional one-line notice in the query."""
    if flash:
        url += ("&" if "?" in url else "?") + "notice=" + quote(flash)
    return RedirectResponse(url, status_code=303, headers=HEADERS)


def error_page(request: Request, status: int, message: str) -> Response:
    """An error as JSON for API calls, else as a page."""
    if wants_json(request):
        return JSONResponse({"error": message}, status_code=status, headers=HEADERS)
    return page(request, "error.html", user=current_user(request), status=status, message=message)
