"""Tracking routes: verify the signed token, call one function in ``newsletter.track.record``,
answer with a redirect, a pixel or a small page (URL shapes: ``newsletter.render.links``)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import anyio
import anyio.to_thread
from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from newsletter import tokens
from newsletter.api import pages
from newsletter.api.deps import Client, Tracking, client, form_fields, same_origin, tracking
from newsletter.models import Frequency
from newsletter.render.limits import RENDER_SECONDS
from newsletter.render.links import url_scheme
from newsletter.tokens import TokenError
from newsletter.track import record

log = logging.getLogger(__name__)
router = APIRouter()
ONE_CLICK_FIELD, ONE_CLICK_VALUE = "List-Unsubscribe", "One-Click"  # RFC 8058 section 3.1
CROSS_SITE = "It was sent from another site. Open the preferences link in your email instead."
STALE_FORM = "The page is too old or incomplete. Reload it and save again."
VIEW_THREADS = 4  # /v/ renders at once; the other routes keep their own worker threads
VIEW_SECONDS = RENDER_SECONDS + 3.0  # the render's own limit, plus the database reads


@router.get("/t/c/{token}")
def click(token: str, t: Tracking = Depends(tracking), who: Client = Depends(client)) -> Response:
    """Record a click and redirect to exactly the URL the token was signed for."""
    return answer_click(token, t, who, prefetch=who.prefetch)


@router.get("/t/o/{name}")
def open_pixel(
    name: str, t: Tracking = Depends(tracking), who: Client = Depends(client)
) -> Response:
    """Always answer the 1x1 GIF; record an open when the token verifies."""
    return answer_pixel(name, t, who)


def answer_click(token: str, t: Tracking, who: Client, **facts: Any) -> Response:
    """Verify a click token, record the click (with `facts`, e.g. the method) and redirect to
    exactly the signed URL; a bad token or a non-web URL gets the broken-link page."""
    try:
        payload = tokens.verify_click(token, secret_key=t.settings.secret_key)
    except TokenError:
        return pages.broken_link()
    if payload.url is None or url_scheme(payload.url) not in ("http", "https"):
        return pages.broken_link()
    t.record_click(
        message_id=payload.message_id,
        slot=payload.slot,
        url=payload.url,
        user_agent=who.user_agent,
        ip=who.ip,
        now=t.now(),
        **facts,
    )
    return RedirectResponse(payload.url, status_code=302, headers=pages.PAGE_HEADERS)


def answer_pixel(name: str, t: Tracking, who: Client, **facts: Any) -> Response:
    """The 1x1 GIF, always; an open (with `facts`) is recorded when the token verifies."""
    try:
        payload = tokens.verify_open(name.removesuffix(".gif"), secret_key=t.settings.secret_key)
        t.record_open(
            message_id=payload.message_id,
            user_agent=who.user_agent,
            ip=who.ip,
            now=t.now(),
            **facts,
        )
    except TokenError:
        pass
    except Exception:  # the reader's email must never show a broken image
        log.exception("open pixel failed (token %s)", tokens.token_digest(name))
    return pages.pixel()


@router.get("/u/{token}")
def unsubscribe_page(token: str, t: Tracking = Depends(tracking)) -> Response:
    """A confirmation page whose button POSTs back here; a GET never unsubscribes."""
    try:
        tokens.verify_unsubscribe(token, secret_key=t.settings.secret_key)
    except TokenError:
        return pages.broken_link()
    return pages.page("unsubscribe.html", title="Unsubscribe")


@router.post("/u/{token}")
def unsubscribe(
    token: str,
    t: Tracking = Depends(tracking),
    who: Client = Depends(client),
    form: dict[str, list[str]] = Depends(form_fields),
) -> Response:
    """Unsubscribe on RFC 8058's ``List-Unsubscribe=One-Click`` body (the mail client's
    one-click POST, or the page's button, which sends the same); idempotent."""
    try:
        payload = tokens.verify_unsubscribe(token, secret_key=t.settings.secret_key)
    except TokenError:
        return pages.broken_link()
    if form.get(ONE_CLICK_FIELD) != [ONE_CLICK_VALUE]:
        return pages.not_unsubscribe_request()
    done = record.unsubscribe(
        t.engine, message_id=payload.message_id, user_agent=who.user_agent, ip=who.ip, now=t.now()
    )
    if not done:
        return pages.not_found()
    return pages.message("You're unsubscribed", "You won't receive these emails any more.")


def _preferences_page(
    prefs: record.Preferences,
    *,
    token: str,
    t: Tracking,
    saved: bool = False,
    error: str | None = None,
) -> Response:
    """The preferences form (it posts back to the page's own URL, with an anti-forgery value)."""
    csrf = tokens.sign_form(
        secret_key=t.settings.secret_key, token=token, issued_at=int(t.now().timestamp())
    )
    return pages.page(
        "preferences.html",
        status=400 if error else 200,
        title="Your preferences",
        prefs=prefs,
        saved=saved,
        error=error,
        csrf=csrf,
        frequencies=[f.value for f in Frequency],
    )


@router.get("/p/{token}")
def preferences_page(token: str, t: Tracking = Depends(tracking)) -> Response:
    """Show the subscriber's frequency and topics in a form."""
    try:
        payload = tokens.verify_preferences(token, secret_key=t.settings.secret_key)
    except TokenError:
        return pages.broken_link()
    prefs = record.load_preferences(t.engine, message_id=payload.message_id)
    return pages.not_found() if prefs is None else _preferences_page(prefs, token=token, t=t)


@router.post("/p/{token}")
def save_preferences(
    token: str,
    request: Request,
    t: Tracking = Depends(tracking),
    form: dict[str, list[str]] = Depends(form_fields),
) -> Response:
    """Save the submitted frequency and topics (400 naming the bad value); only from the
    service's own page (Origin) with the page's anti-forgery value (403 otherwise)."""
    try:
        payload = tokens.verify_preferences(token, secret_key=t.settings.secret_key)
    except TokenError:
        return pages.broken_link()
    if not same_origin(request.headers.get("origin"), t.settings.base_url):
        return pages.forbidden(CROSS_SITE)
    try:
        tokens.verify_form(
            next(iter(form.get("csrf", [])), None),
            secret_key=t.settings.secret_key,
            token=token,
            now=int(t.now().timestamp()),
        )
    except TokenError:
        return pages.forbidden(STALE_FORM)
    frequency = next(iter(form.get("frequency", [])), None)
    try:
        prefs = record.save_preferences(
            t.engine,
            message_id=payload.message_id,
            frequency=frequency,
            topics=form.get("topics", []),
            now=t.now(),
        )
    except record.PreferencesError as exc:
        current = record.load_preferences(t.engine, message_id=payload.message_id)
        if current is None:
            return pages.not_found()
        return _preferences_page(current, token=token, t=t, error=str(exc))
    if prefs is None:
        return pages.not_found()
    return _preferences_page(prefs, token=token, t=t, saved=True)


@router.get("/v/{token}")
async def view(token: str, request: Request, t: Tracking = Depends(tracking)) -> Response:
    """The message's HTML as sent (re-rendered), or 404 when the message is gone.

    Rendering runs a marketer's template, so it happens in a worker thread, at most
    ``VIEW_THREADS`` at a time, and the page is answered 503 once ``VIEW_SECONDS`` pass (the
    render itself stops at its own time limit): a bad template never ties up the server.
    """
    try:
        payload = tokens.verify_view(token, secret_key=t.settings.secret_key)
    except TokenError:
        return pages.broken_link()

    def render() -> str | None:
        return record.message_html(
            t.engine,
            message_id=payload.message_id,
            settings=t.settings,
            cache=t.templates,
        )

    try:
        with anyio.fail_after(VIEW_SECONDS):
            html = await anyio.to_thread.run_sync(
                render, limiter=_view_limiter(request), abandon_on_cancel=True
            )
    except (record.ViewError, TimeoutError):
        log.exception("view in browser failed (token %s)", tokens.token_digest(token))
        return pages.server_error()
    return pages.not_found() if html is None else pages.view(html)


def _view_limiter(request: Request) -> anyio.CapacityLimiter:
    """The app's /v/ thread limiter (made in, and kept for, the event loop that serves)."""
    loop = id(asyncio.get_running_loop())
    found = getattr(request.app.state, "view_limiter", None)
    if found is None or found[0] != loop:
        found = request.app.state.view_limiter = (loop, anyio.CapacityLimiter(VIEW_THREADS))
    limiter: anyio.CapacityLimiter = found[1]
    return limiter
