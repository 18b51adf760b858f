"""Tracking routes: verify the signed token, call one function in ``newsletter.track.record``,
answer with a redirect, a pixel or a small page (URL shapes: ``newsletter.render.links``)."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Depends
from fastapi.responses import RedirectResponse, Response

from newsletter.api import pages
from newsletter.api.deps import Client, Tracking, client, form_fields, tracking
from newsletter.models import Frequency
from newsletter.render.links import url_scheme
from newsletter.track import record, tokens
from newsletter.track.tokens import TokenError

log = logging.getLogger(__name__)
router = APIRouter()


@router.get("/t/c/{token}")
def click(token: str, t: Tracking = Depends(tracking), who: Client = Depends(client)) -> Response:
    """Record a click and redirect to exactly the URL the token was signed for."""
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
        prefetch=who.prefetch,
    )
    return RedirectResponse(payload.url, status_code=302, headers=pages.PAGE_HEADERS)


@router.get("/t/o/{name}")
def open_pixel(
    name: str, t: Tracking = Depends(tracking), who: Client = Depends(client)
) -> Response:
    """Always answer the 1x1 GIF; record an open when the token verifies."""
    try:
        payload = tokens.verify_open(name.removesuffix(".gif"), secret_key=t.settings.secret_key)
        t.record_open(
            message_id=payload.message_id,
            user_agent=who.user_agent,
            ip=who.ip,
            now=t.now(),
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
    token: str, t: Tracking = Depends(tracking), who: Client = Depends(client)
) -> Response:
    """Unsubscribe (RFC 8058 one-click, or the page's button); idempotent."""
    try:
        payload = tokens.verify_unsubscribe(token, secret_key=t.settings.secret_key)
    except TokenError:
        return pages.broken_link()
    done = record.unsubscribe(
        t.engine, message_id=payload.message_id, user_agent=who.user_agent, ip=who.ip, now=t.now()
    )
    if not done:
        return pages.not_found()
    return pages.message("You're unsubscribed", "You won't receive these emails any more.")


def _preferences_page(
    prefs: record.Preferences, *, saved: bool = False, error: str | None = None
) -> Response:
    """The preferences form (the form posts back to the page's own URL)."""
    return pages.page(
        "preferences.html",
        status=400 if error else 200,
        title="Your preferences",
        prefs=prefs,
        saved=saved,
        error=error,
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
    return pages.not_found() if prefs is None else _preferences_page(prefs)


@router.post("/p/{token}")
def save_preferences(
    token: str, t: Tracking = Depends(tracking), form: dict[str, list[str]] = Depends(form_fields)
) -> Response:
    """Save the submitted frequency and topics (400 naming the bad value)."""
    try:
        payload = tokens.verify_preferences(token, secret_key=t.settings.secret_key)
    except TokenError:
        return pages.broken_link()
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
        return _preferences_page(current, error=str(exc))
    return pages.not_found() if prefs is None else _preferences_page(prefs, saved=True)


@router.get("/v/{token}")
def view(token: str, t: Tracking = Depends(tracking)) -> Response:
    """The message's HTML as sent (re-rendered), or 404 when the message is gone."""
    try:
        payload = tokens.verify_view(token, secret_key=t.settings.secret_key)
    except TokenError:
        return pages.broken_link()
    try:
        html = record.message_html(
            t.engine,
            message_id=payload.message_id,
            settings=t.settings,
            now=t.now(),
            cache=t.templates,
        )
    except record.ViewError:
        log.exception("view in browser failed (token %s)", tokens.token_digest(token))
        return pages.server_error()
    return pages.not_found() if html is None else pages.view(html)
