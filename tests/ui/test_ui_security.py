"""Web UI security: no page or API without a session, no POST without the CSRF token, roles
enforced on the server, template payloads (<script>, SSTI) never run in the editor or preview."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select
from starlette.routing import BaseRoute, Mount, Route
from ui_world import ADMIN, EDITOR, VIEWER, UiWorld, signed_in

from newsletter.models import Message, Template, TemplateVersion
from newsletter.render.compile import TEMPLATES_DIR
from newsletter.store import runs

SHIPPED_MJML = (TEMPLATES_DIR / "digest" / "template.mjml").read_text(encoding="utf-8")
PUBLIC = {"/admin/login"}


def walk(routes: Sequence[BaseRoute], prefix: str = "") -> Iterator[tuple[str, set[str]]]:
    """(path, methods) of every endpoint the app serves: its own routes, those of included
    routers (FastAPI 0.165 keeps each as an ``_IncludedRouter`` with ``original_router`` and
    ``include_context.prefix``, nested ones too) and those of mounted apps."""
    for route in routes:
        original = getattr(route, "original_router", None)
        if original is not None:
            yield from walk(original.routes, prefix + route.include_context.prefix)  # type: ignore[attr-defined]
        elif isinstance(route, Mount):
            yield from walk(route.routes, prefix + route.path)
        elif isinstance(route, APIRoute | Route):
            yield prefix + route.path, set(route.methods or ())


def _admin_routes(client: TestClient, world: UiWorld) -> list[tuple[str, str]]:
    values = {
        "name": "digest",
        "run_id": str(world.run_id),
        "subscriber_id": str(world.subscriber_id),
        "action": "pause",
    }
    found = []
    for route_path, methods in walk(client.app.router.routes):  # type: ignore[attr-defined]
        if not route_path.startswith("/admin") or route_path in PUBLIC:
            continue
        path = re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], route_path)
        found += [(method, path) for method in sorted(methods)]
    return found


def test_every_admin_page_and_api_refuses_a_request_without_a_session(
    client: TestClient, world_counts: dict[str, int], ui_world: UiWorld
) -> None:
    routes = _admin_routes(client, ui_world)
    assert len(routes) >= 23  # every page, form and JSON endpoint, found in the app itself
    for method, path in routes:
        answer = client.request(method, path, data={"csrf_token": "x"})
        if method in ("GET", "HEAD") and not path.startswith("/admin/api/"):
            assert answer.status_code == 303, (method, path)
            assert answer.headers["location"].startswith("/admin/login?next=")
        else:
            assert answer.status_code == 401, (method, path)
        assert "reader" not in answer.text and "digest" not in answer.text.replace(path, "")
    assert world_counts == _counts(client)  # nothing changed


def test_the_route_walk_finds_routers_included_later_nested_and_mounted() -> None:
    from fastapi import APIRouter, FastAPI

    inner, outer, app = APIRouter(), APIRouter(), FastAPI()
    inner.add_api_route("/deep/{name}", lambda name: name, methods=["GET", "POST"])
    outer.add_api_route("/page", lambda: "", methods=["GET"])
    outer.include_router(inner, prefix="/inner")
    app.include_router(outer, prefix="/admin/extra")
    sub = FastAPI()
    sub.add_api_route("/there", lambda: "", methods=["DELETE"])
    app.mount("/admin/mounted", sub)
    found = {(path, method) for path, methods in walk(app.router.routes) for method in methods}
    assert {
        ("/admin/extra/page", "GET"),
        ("/admin/extra/inner/deep/{name}", "GET"),
        ("/admin/extra/inner/deep/{name}", "POST"),
        ("/admin/mounted/there", "DELETE"),
    } <= found


@pytest.fixture
def world_counts(client: TestClient) -> dict[str, int]:
    return _counts(client)


def _counts(client: TestClient) -> dict[str, int]:
    engine: Engine = client.app.state.admin.engine  # type: ignore[attr-defined]
    with engine.connect() as c:
        return {
            "versions": c.execute(select(func.count()).select_from(TemplateVersion)).scalar_one(),
            "templates": c.execute(select(func.count()).select_from(Template)).scalar_one(),
            "skipped": c.execute(
                select(func.count()).where(Message.status == "skipped")  # type: ignore[arg-type]
            ).scalar_one(),
        }


def _draft(**parts: str) -> dict[str, str]:
    return {
        "mjml": SHIPPED_MJML,
        "subject": "Hello {{ subscriber.first_name }}",
        "preheader": "",
        "text": "Hi {{ subscriber.first_name }}",
        **parts,
    }


def test_posts_without_a_valid_csrf_token_are_refused(
    client: TestClient, ui_world: UiWorld, world_counts: dict[str, int]
) -> None:
    signed_in(client, ADMIN)
    forms = [
        ("/admin/templates", {"name": "forged", "kind": "digest"}),
        ("/admin/templates/digest/save", _draft()),
        ("/admin/templates/digest/publish", {"version": "1"}),
        ("/admin/templates/digest/restore", {"version": "1"}),
        ("/admin/templates/digest/test-send", {**_draft(), "test_to": "x@example.com"}),
        ("/admin/segments/everyone", {"definition": "rule: {status: active}"}),
        (f"/admin/runs/{ui_world.run_id}/cancel", {}),
        ("/admin/logout", {}),
    ]
    for path, data in forms:
        for token in (None, "wrong-token"):
            body = data if token is None else {**data, "csrf_token": token}
            answer = client.post(path, data=body)
            assert answer.status_code == 403, (path, token)
            assert "expired" in answer.text
    for path in ("/admin/templates/digest/preview", "/admin/segments/everyone/check"):
        assert client.post(path, json=_draft()).status_code == 403
        assert client.post(path, json=_draft(), headers={"X-CSRF-Token": "no"}).status_code == 403
    assert world_counts == _counts(client)
    assert client.get("/admin/templates").status_code == 200  # still signed in: logout refused


def test_a_post_from_another_site_is_refused_even_with_the_token(client: TestClient) -> None:
    csrf = signed_in(client, EDITOR)
    answer = client.post(
        "/admin/templates/digest/save",
        data={**_draft(), "csrf_token": csrf},
        headers={"Origin": "https://evil.example.net"},
    )
    assert answer.status_code == 403 and "another site" in answer.text
    same = client.post(
        "/admin/templates/digest/save",
        data={**_draft(), "csrf_token": csrf},
        headers={"Origin": "https://news.example.com"},
    )
    assert same.status_code == 303


def test_roles_are_enforced_on_the_server(client: TestClient, ui_world: UiWorld) -> None:
    csrf = signed_in(client, EDITOR)
    saved = client.post("/admin/templates/digest/save", data={**_draft(), "csrf_token": csrf})
    assert saved.status_code == 303  # editors edit
    publish = client.post(
        "/admin/templates/digest/publish", data={"version": "1", "csrf_token": csrf}
    )
    assert publish.status_code == 403 and "admin role" in publish.text
    pause = client.post(f"/admin/runs/{ui_world.run_id}/cancel", data={"csrf_token": csrf})
    assert pause.status_code == 403
    client.cookies.clear()
    csrf = signed_in(client, VIEWER)
    for path, data in [
        ("/admin/templates/digest/publish", {"version": "1"}),
        ("/admin/templates/digest/save", _draft()),
        ("/admin/templates/digest/restore", {"version": "1"}),
        ("/admin/templates/digest/test-send", {**_draft(), "test_to": "v@example.com"}),
        ("/admin/segments/everyone", {"definition": "rule: {status: active}"}),
    ]:
        answer = client.post(path, data={**data, "csrf_token": csrf})
        assert answer.status_code == 403, path
    editor_page = client.get("/admin/templates/digest")
    assert "Publish version" not in editor_page.text and "readonly" in editor_page.text
    engine: Engine = client.app.state.admin.engine  # type: ignore[attr-defined]
    with engine.connect() as c:
        assert c.execute(select(Template.current_version)).scalars().all() == [None]  # type: ignore[call-overload]
    assert runs.run_status(engine, run_id=ui_world.run_id) == "delivered"


SSTI = [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{ subscriber|attr('__class__') }}",
    "{{ '{0.__class__}'.format(subscriber) }}",
    "{{ self.__init__.__globals__ }}",
]


@pytest.mark.parametrize("payload", SSTI)
def test_ssti_payloads_neither_render_nor_publish(client: TestClient, payload: str) -> None:
    csrf = signed_in(client, ADMIN)
    preview = client.post(
        "/admin/templates/digest/preview",
        json=_draft(subject=f"Hi {payload}"),
        headers={"X-CSRF-Token": csrf},
    )
    answer = preview.json()
    assert preview.status_code == 200 and answer["html"] is None
    errors = [i for i in answer["issues"] if i["severity"] == "error"]
    assert errors and {i["part"] for i in errors} == {"subject"}
    assert all(i["line"] == 1 for i in errors)
    assert all(
        "uid=" not in i["message"] and "class 'object'" not in i["message"]
        for i in answer["issues"]
    )
    client.post(
        "/admin/templates/digest/save", data={**_draft(subject=payload), "csrf_token": csrf}
    )
    refused = client.post(
        "/admin/templates/digest/publish", data={"version": "1", "csrf_token": csrf}
    )
    assert refused.status_code == 400 and "was not published" in refused.text


def test_script_in_a_template_is_escaped_in_the_editor_and_sandboxed_in_the_preview(
    client: TestClient,
) -> None:
    csrf = signed_in(client, EDITOR)
    script = "</textarea><script>document.title='owned'</script>"
    mjml = SHIPPED_MJML.replace(
        "</mj-body>",
        "<mj-raw><script>parent.document.title='owned'</script></mj-raw>\n</mj-body>",
        1,
    )
    client.post(
        "/admin/templates/digest/save",
        data={**_draft(mjml=mjml, text=script), "csrf_token": csrf},
    )
    page = client.get("/admin/templates/digest")
    assert "<script>document.title" not in page.text and "<script>parent" not in page.text
    assert "&lt;/textarea&gt;&lt;script&gt;document.title" in page.text
    csp = page.headers["content-security-policy"]
    assert (
        "script-src 'self'" in csp
        and "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]
    )
    assert 'sandbox=""' in page.text  # the preview iframe: no allow-scripts, no same origin
    assert re.findall(r"<script\b[^>]*>", page.text) == [
        '<script src="/admin/static/vendor/codemirror/codemirror.min.js">',
        '<script src="/admin/static/editor.js">',
    ]
