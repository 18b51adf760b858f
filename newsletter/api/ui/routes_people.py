"""Segment pages (edit a rule, live count and sample) and subscriber pages (lookup and why).
Each route calls one function of ``newsletter.admin.segments`` or ``newsletter.admin.lookup``."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from newsletter.admin import lookup
from newsletter.admin import segments as segment_service
from newsletter.admin.accounts import SignedIn, allowed
from newsletter.api.ui.web import (
    HEADERS,
    checked_form,
    checked_json,
    editor,
    error_page,
    page,
    see_other,
    ui,
    viewer,
)
from newsletter.models import Role
from newsletter.plan.segments import SegmentError

router = APIRouter()


@router.get("/admin/segments")
def segments_page(
    request: Request, name: str | None = None, user: SignedIn = Depends(viewer)
) -> Response:
    """Every segment: saved ones, the user's own files and the shipped ones, each with where
    it comes from (?name=NEW opens a new one)."""
    if name:
        return see_other(f"/admin/segments/{quote(name.strip())}")
    admin = ui(request)
    return page(
        request,
        "segments.html",
        user=user,
        segments=segment_service.overview(admin.engine, folder=admin.settings.segment_folder),
        segment_folder=admin.settings.segment_folder,
        notice=request.query_params.get("notice"),
    )


@router.get("/admin/segments/{name}")
def segment_page(request: Request, name: str, user: SignedIn = Depends(viewer)) -> Response:
    """The rule editor with its live count and sample (read-only for the user's own file)."""
    admin = ui(request)
    found = segment_service.open_segment(
        admin.engine, name=name, folder=admin.settings.segment_folder
    )
    result = segment_service.check(
        admin.engine,
        name=name,
        text=found.text,
        now=admin.now(),
        admin=allowed(user.role, Role.admin),
    )
    return page(
        request,
        "segment.html",
        user=user,
        name=name,
        text=found.text,
        found=found,
        result=result,
        notice=request.query_params.get("notice"),
    )


@router.post("/admin/segments/{name}/check")
async def check(request: Request, name: str, user: SignedIn = Depends(viewer)) -> Response:
    """JSON: how many subscribers the rule selects now, and a sample (or the error)."""
    data = await checked_json(request, user)
    admin = ui(request)
    result = segment_service.check(
        admin.engine,
        name=name,
        text=str(data.get("definition") or ""),
        now=admin.now(),
        admin=allowed(user.role, Role.admin),
    )
    return JSONResponse(result.as_dict(), headers=HEADERS)


@router.post("/admin/segments/{name}")
async def save(request: Request, name: str, user: SignedIn = Depends(editor)) -> Response:
    """Save the rule (it must parse and run); planning uses it from the next run on."""
    form = await checked_form(request, user)
    admin = ui(request)
    text = form.get("definition", "")
    try:
        result = segment_service.save(
            admin.engine,
            name=name,
            text=text,
            now=admin.now(),
            admin=allowed(user.role, Role.admin),
            folder=admin.settings.segment_folder,
        )
    except SegmentError as exc:
        failed = segment_service.SegmentCheck(error=str(exc))
        found = segment_service.open_segment(
            admin.engine, name=name, folder=admin.settings.segment_folder
        )
        return page(
            request,
            "segment.html",
            user=user,
            status=400,
            name=name,
            text=text,
            found=found,
            result=failed,
        )
    return see_other(
        f"/admin/segments/{name}", flash=f"Saved {name}: {result.count} subscribers now."
    )


@router.get("/admin/subscribers")
def subscribers_page(request: Request, q: str = "", user: SignedIn = Depends(viewer)) -> Response:
    """Search subscribers by email, name, key or id."""
    hits = lookup.search(ui(request).engine, query=q) if q.strip() else []
    return page(request, "subscribers.html", user=user, q=q, hits=hits)


@router.get("/admin/subscribers/{subscriber_id}")
def subscriber_page(
    request: Request,
    subscriber_id: int,
    campaign: str | None = None,
    user: SignedIn = Depends(viewer),
) -> Response:
    """Status, arm, preferences, recent messages with slots and reasons, and why."""
    try:
        admin = ui(request)
        found = lookup.subscriber_page(
            admin.engine,
            subscriber_id=subscriber_id,
            campaign=campaign or None,
            settings=admin.settings,
        )
    except lookup.SubscriberNotFound as exc:
        return error_page(request, 404, str(exc))
    return page(request, "subscriber.html", user=user, p=found)
