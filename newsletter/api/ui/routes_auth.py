"""Sign-in and sign-out: the login form (double-submit CSRF cookie), sessions, the home page."""

from __future__ import annotations

import hmac
import secrets

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from newsletter.admin.accounts import LIFETIME, LoginRefused, SignedIn, sign_in, sign_out
from newsletter.api.ui.web import (
    COOKIE,
    LOGIN_COOKIE,
    checked_form,
    current_user,
    page,
    read_form,
    same_origin,
    see_other,
    ui,
    viewer,
)

router = APIRouter()
HOME = "/admin/campaigns"


def _safe_next(target: str | None) -> str:
    """Only a path inside the UI (never another site, never //host)."""
    if target and target.startswith("/admin/") and not target.startswith("//"):
        return target
    return HOME


def _login_page(request: Request, *, error: str | None = None, status: int = 200) -> Response:
    token = secrets.token_urlsafe(24)
    response = page(
        request,
        "login.html",
        user=None,
        status=status,
        login_token=token,
        error=error,
        next=_safe_next(request.query_params.get("next")),
    )
    response.set_cookie(
        LOGIN_COOKIE,
        token,
        max_age=3600,
        path="/admin/login",
        httponly=True,
        samesite="strict",
        secure=ui(request).secure_cookies,
    )
    return response


@router.get("/admin/login")
def login_form(request: Request) -> Response:
    """The sign-in form (straight to the campaigns when already signed in)."""
    if current_user(request) is not None:
        return see_other(HOME)
    return _login_page(request)


@router.post("/admin/login")
async def login(request: Request) -> Response:
    """Check the address and password (rate-limited) and start a session."""
    form = await read_form(request)
    sent, cookie = form.get("login_token", ""), request.cookies.get(LOGIN_COOKIE, "")
    if not cookie or not hmac.compare_digest(sent.encode(), cookie.encode()):
        return _login_page(request, error="The form expired. Please sign in again.", status=403)
    if not same_origin(request, ui(request).settings):
        return _login_page(request, error="Sign in from this site's own page.", status=403)
    admin = ui(request)
    try:
        started = sign_in(
            admin.engine,
            email=form.get("email", ""),
            password=form.get("password", ""),
            ip=request.client.host if request.client else None,
            user_agent=request.headers.get("user-agent"),
            now=admin.now(),
        )
    except LoginRefused as exc:
        return _login_page(request, error=str(exc), status=429 if exc.limited else 401)
    response = see_other(_safe_next(form.get("next")))
    response.set_cookie(
        COOKIE,
        started.token,
        max_age=int(LIFETIME.total_seconds()),
        path="/admin",
        httponly=True,
        samesite="lax",
        secure=admin.secure_cookies,
    )
    response.delete_cookie(LOGIN_COOKIE, path="/admin/login")
    return response


@router.post("/admin/logout")
async def logout(request: Request, user: SignedIn = Depends(viewer)) -> Response:
    """End the session and forget the cookie."""
    await checked_form(request, user)
    sign_out(ui(request).engine, token=request.cookies.get(COOKIE))
    response = see_other("/admin/login")
    response.delete_cookie(COOKIE, path="/admin")
    return response


@router.get("/admin")
@router.get("/admin/")
def home(user: SignedIn = Depends(viewer)) -> Response:
    """The UI starts at the campaigns."""
    return see_other(HOME)
