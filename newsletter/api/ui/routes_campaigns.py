"""Campaign pages: the list, one campaign (runs by status, report, lift), run control and the
`newsletter report` page of a run. Each route calls one ``newsletter.admin.campaigns`` function."""

from __future__ import annotations

from fastapi import APIRouter, BackgroundTasks, Depends, Request
from fastapi.responses import HTMLResponse, Response

from newsletter.admin import campaigns
from newsletter.admin.accounts import SignedIn
from newsletter.admin.campaigns import CampaignError
from newsletter.api.ui.web import (
    HEADERS,
    admin_role,
    checked_form,
    error_page,
    page,
    see_other,
    ui,
    viewer,
)
from newsletter.store.overview import run as find_run

router = APIRouter()
REPORT_HEADERS = {
    **HEADERS,
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "img-src data:; frame-ancestors 'self'; base-uri 'none'; form-action 'none'",
}


@router.get("/admin/campaigns")
def campaigns_page(request: Request, user: SignedIn = Depends(viewer)) -> Response:
    """Every campaign: kind, schedule or trigger, arm split, next run, last run's results."""
    admin = ui(request)
    return page(
        request,
        "campaigns.html",
        user=user,
        campaigns=campaigns.overview(admin.engine, now=admin.now()),
        notice=request.query_params.get("notice"),
    )


@router.get("/admin/campaigns/{name}")
def campaign_page(request: Request, name: str, user: SignedIn = Depends(viewer)) -> Response:
    """One campaign: its runs with counts by status, run control, the newest run's report."""
    admin = ui(request)
    try:
        view = campaigns.campaign_page(admin.engine, name=name, now=admin.now())
    except CampaignError as exc:
        return error_page(request, 404, str(exc))
    return page(
        request, "campaign.html", user=user, c=view, notice=request.query_params.get("notice")
    )


def _campaign_url(request: Request, run_id: int) -> str:
    from newsletter.store.overview import campaigns as all_campaigns

    run = find_run(ui(request).engine, run_id=run_id)
    names = {c.id: c.name for c in all_campaigns(ui(request).engine)}
    return f"/admin/campaigns/{names.get(run.campaign_id, '')}" if run else "/admin/campaigns"


@router.post("/admin/runs/{run_id}/{action}")
async def run_action(
    request: Request,
    run_id: int,
    action: str,
    background: BackgroundTasks,
    user: SignedIn = Depends(admin_role),
) -> Response:
    """Pause, resume (then deliver what is due, in the background) or cancel a run."""
    await checked_form(request, user)
    admin = ui(request)
    try:
        if action == "pause":
            campaigns.pause(admin.engine, run_id=run_id)
            text = f"Run {run_id} paused: nothing more is sent until you resume it."
        elif action == "resume":
            campaigns.resume(admin.engine, run_id=run_id)
            background.add_task(
                campaigns.deliver_now,
                admin.engine,
                run_id=run_id,
                settings=admin.settings,
                now=admin.now(),
            )
            text = f"Run {run_id} resumed: due messages are being sent."
        elif action == "cancel":
            skipped = campaigns.cancel(admin.engine, run_id=run_id, now=admin.now())
            text = f"Run {run_id} cancelled: {skipped} unsent messages skipped."
        else:
            return error_page(request, 404, f"unknown action {action!r}")
    except CampaignError as exc:
        return error_page(request, 400, str(exc))
    return see_other(_campaign_url(request, run_id), flash=text)


@router.get("/admin/runs/{run_id}/report")
def report(request: Request, run_id: int, user: SignedIn = Depends(viewer)) -> Response:
    """The report `newsletter report RUN` writes (rates per arm, lift with intervals)."""
    try:
        html = campaigns.report_html(ui(request).engine, run_id=run_id)
    except CampaignError as exc:
        return error_page(request, 404, str(exc))
    return HTMLResponse(html, headers=REPORT_HEADERS)
