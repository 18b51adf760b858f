"""Template pages: list and create, the editor (save, publish, restore, diff), live preview
(JSON) and test sends. Each route calls one function of ``newsletter.admin.editor`` or
``newsletter.admin.preview``."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from newsletter.admin import editor
from newsletter.admin import preview as live
from newsletter.admin.accounts import SignedIn
from newsletter.admin.editor import Draft, EditorError, PublishError
from newsletter.api.ui.web import (
    HEADERS,
    admin_role,
    checked_form,
    checked_json,
    error_page,
    page,
    see_other,
    ui,
    viewer,
)
from newsletter.api.ui.web import (
    editor as editor_role,
)
from newsletter.render.context import CONTEXT_FIELDS

router = APIRouter()


def _draft(data: dict) -> Draft:
    return Draft(*(str(data.get(part) or "") for part in editor.PARTS))


def _url(name: str) -> str:
    return f"/admin/templates/{name}"


@router.get("/admin/templates")
def templates_page(request: Request, user: SignedIn = Depends(viewer)) -> Response:
    """Every template, with its published and newest versions."""
    return page(
        request,
        "templates.html",
        user=user,
        templates=editor.overview(ui(request).engine),
        kinds=editor.KINDS,
        notice=request.query_params.get("notice"),
    )


@router.post("/admin/templates")
async def create(request: Request, user: SignedIn = Depends(editor_role)) -> Response:
    """Create a template from the shipped one of its kind."""
    form = await checked_form(request, user)
    name = form.get("name", "").strip()
    admin = ui(request)
    try:
        editor.create_template(
            admin.engine, name=name, kind=form.get("kind", ""), author=user.email, now=admin.now()
        )
    except EditorError as exc:
        return error_page(request, 400, str(exc))
    return see_other(_url(name), flash=f"Created {name} (version 1, not published yet).")


def _editor_page(
    request: Request,
    user: SignedIn,
    state: editor.EditorState,
    *,
    status: int = 200,
    notice: str | None = None,
    error: str | None = None,
    issues: list[editor.Issue] | None = None,
) -> Response:
    return page(
        request,
        "editor.html",
        user=user,
        status=status,
        t=state,
        issues=editor.lint_draft(state.name, state.draft) if issues is None else issues,
        fields=CONTEXT_FIELDS,
        labels=editor.PART_LABELS,
        notice=notice or request.query_params.get("notice"),
        error=error,
    )


@router.get("/admin/templates/{name}")
def editor_page(
    request: Request, name: str, version: int | None = None, user: SignedIn = Depends(viewer)
) -> Response:
    """The editor on the newest version (or ?version=N), with history and a live preview."""
    try:
        state = editor.open_template(ui(request).engine, name=name, version=version)
    except EditorError as exc:
        return error_page(request, 404, str(exc))
    return _editor_page(request, user, state)


@router.post("/admin/templates/{name}/save")
async def save(request: Request, name: str, user: SignedIn = Depends(editor_role)) -> Response:
    """Save the editor's content as a new version (lint errors are shown, not blocking)."""
    form = await checked_form(request, user)
    admin = ui(request)
    try:
        saved = editor.save_draft(
            admin.engine, name=name, draft=_draft(form), author=user.email, now=admin.now()
        )
    except EditorError as exc:
        return error_page(request, 400, str(exc))
    errors = sum(i.severity == "error" for i in saved.issues)
    text = f"Saved as version {saved.version}." if saved.created else "No changes to save."
    if errors:
        text += f" It has {errors} error(s): fix them before publishing."
    return see_other(_url(name), flash=text)


@router.post("/admin/templates/{name}/publish")
async def publish(request: Request, name: str, user: SignedIn = Depends(admin_role)) -> Response:
    """Publish a saved version: the next run uses it (refused while it has errors)."""
    form = await checked_form(request, user)
    admin = ui(request)
    try:
        version = int(form.get("version", ""))
    except ValueError:
        return error_page(request, 400, "Choose a saved version to publish.")
    try:
        editor.publish(admin.engine, name=name, version=version, author=user.email, now=admin.now())
    except PublishError as exc:
        state = editor.open_template(admin.engine, name=name, version=version)
        return _editor_page(request, user, state, status=400, error=str(exc), issues=exc.issues)
    except EditorError as exc:
        return error_page(request, 400, str(exc))
    return see_other(_url(name), flash=f"Published version {version}: the next run uses it.")


@router.post("/admin/templates/{name}/restore")
async def restore(request: Request, name: str, user: SignedIn = Depends(editor_role)) -> Response:
    """Save an old version's content as the newest version."""
    form = await checked_form(request, user)
    admin = ui(request)
    try:
        old = int(form.get("version", ""))
        number = editor.restore(
            admin.engine, name=name, version=old, author=user.email, now=admin.now()
        )
    except (ValueError, EditorError) as exc:
        return error_page(request, 400, str(exc))
    return see_other(_url(name), flash=f"Restored version {old} as version {number}.")


@router.get("/admin/templates/{name}/diff")
def diff(
    request: Request, name: str, old: int, new: int, user: SignedIn = Depends(viewer)
) -> Response:
    """What changed from version `old` to version `new`."""
    try:
        parts = editor.diff(ui(request).engine, name=name, old=old, new=new)
    except EditorError as exc:
        return error_page(request, 404, str(exc))
    return page(
        request,
        "diff.html",
        user=user,
        name=name,
        old=old,
        new=new,
        parts=parts,
        labels=editor.PART_LABELS,
    )


@router.post("/admin/templates/{name}/preview")
async def preview(request: Request, name: str, user: SignedIn = Depends(viewer)) -> Response:
    """JSON: the draft rendered for a subscriber (or the sample one), with its issues."""
    data = await checked_json(request, user)
    admin = ui(request)
    try:
        subscriber = live.resolve_subscriber(admin.engine, data.get("subscriber"))
        result = live.live_preview(
            admin.engine,
            settings=admin.settings,
            name=name,
            kind=editor.template_kind(admin.engine, name=name),
            draft=_draft(data),
            subscriber=subscriber,
            now=admin.now(),
            inputs=admin.inputs,
        )
    except EditorError as exc:
        return JSONResponse({"error": str(exc)}, status_code=400, headers=HEADERS)
    return JSONResponse(result.as_dict(), headers=HEADERS)


@router.post("/admin/templates/{name}/test-send")
async def test_send(request: Request, name: str, user: SignedIn = Depends(editor_role)) -> Response:
    """Send the editor's content (unsaved edits too) as a [Test] email to an address."""
    form = await checked_form(request, user)
    admin = ui(request)
    draft = _draft(form)
    try:
        state = editor.open_template(admin.engine, name=name)
    except EditorError as exc:
        return error_page(request, 404, str(exc))
    state.draft = draft
    to = form.get("test_to", "")
    try:
        live.send_test(
            admin.engine,
            settings=admin.settings,
            name=name,
            kind=state.kind,
            draft=draft,
            to=to,
            subscriber=live.resolve_subscriber(admin.engine, form.get("subscriber")),
            now=admin.now(),
        )
    except EditorError as exc:
        return _editor_page(request, user, state, status=400, error=str(exc))
    return _editor_page(request, user, state, notice=f"Test email sent to {to.strip()}.")


@router.get("/admin/api/subscribers")
def find_subscribers(request: Request, q: str = "", user: SignedIn = Depends(viewer)) -> Response:
    """JSON: subscribers matching an email, name, key or id (for the preview picker)."""
    from newsletter.admin.lookup import search

    hits = search(ui(request).engine, query=q, limit=10)
    rows = [{"id": h.id, "email": h.email, "name": h.name, "key": h.external_key} for h in hits]
    return JSONResponse({"subscribers": rows}, headers=HEADERS)
