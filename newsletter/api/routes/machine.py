"""Requests only machines make: the hidden honeypot link, and HEAD on click and pixel links.

``GET|HEAD /t/h/{token}`` records a honeypot hit (its burst is marked machine) and answers a
blank page; ``HEAD /t/c/{token}`` answers exactly what a GET would (a 302 to the signed URL)
and records the click as ``head-request``; ``HEAD /t/o/{token}.gif`` likewise for the pixel.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import HTMLResponse, Response

from newsletter import tokens
from newsletter.api import pages
from newsletter.api.deps import Client, Tracking, client, tracking
from newsletter.api.routes.tracking import answer_click, answer_pixel
from newsletter.tokens import TokenError
from newsletter.track import record

router = APIRouter(include_in_schema=False)


@router.api_route("/t/h/{token}", methods=["GET", "HEAD"])
def honeypot(
    token: str, t: Tracking = Depends(tracking), who: Client = Depends(client)
) -> Response:
    """Record a hit on the hidden link; answer an empty page (nothing to see, no redirect)."""
    try:
        payload = tokens.verify_honeypot(token, secret_key=t.settings.secret_key)
    except TokenError:
        return pages.broken_link()
    key = record.message_key(payload.message_id)
    if key is not None:
        t.record_honeypot(message_id=key, user_agent=who.user_agent, ip=who.ip)
    return HTMLResponse("", headers=pages.PAGE_HEADERS)


@router.head("/t/c/{token}")
def head_click(
    token: str, t: Tracking = Depends(tracking), who: Client = Depends(client)
) -> Response:
    """A link checker's HEAD: the same redirect as a GET, recorded as a machine click."""
    return answer_click(token, t, who, method="HEAD")


@router.head("/t/o/{name}")
def head_pixel(
    name: str, t: Tracking = Depends(tracking), who: Client = Depends(client)
) -> Response:
    """A HEAD on the pixel: the GIF's headers, recorded as a machine open."""
    return answer_pixel(name, t, who, method="HEAD")
