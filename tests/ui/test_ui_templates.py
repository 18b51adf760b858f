"""Templates in the web UI: versions, diff, restore, the lint gate on publish, the published
version in the next run, live preview on a real subscriber, test sends through the transport."""

from __future__ import annotations

from datetime import timedelta
from email import message_from_bytes
from email.message import Message as EmailMessage
from pathlib import Path

from fastapi.testclient import TestClient
from markupsafe import escape
from sqlalchemy import Engine, select
from ui_world import ADMIN, EDITOR, NOW, UiWorld, signed_in

from newsletter.config import Settings
from newsletter.deliver import MemoryTransport
from newsletter.deliver.dispatch import dispatch_run
from newsletter.models import Item, Message, Slot, Template
from newsletter.plan.planner import plan_run
from newsletter.plan.sources import popularity_slot_source
from newsletter.render.compile import TEMPLATES_DIR

SHIPPED = {
    part: (TEMPLATES_DIR / "digest" / name).read_text(encoding="utf-8")
    for part, name in [
        ("mjml", "template.mjml"),
        ("subject", "subject.txt"),
        ("preheader", "preheader.txt"),
        ("text", "text.txt"),
    ]
}


def _save(client: TestClient, csrf: str, name: str = "digest", **parts: str) -> str:
    answer = client.post(
        f"/admin/templates/{name}/save", data={**SHIPPED, **parts, "csrf_token": csrf}
    )
    assert answer.status_code == 303, answer.text
    return client.get(answer.headers["location"]).text


def _publish(client: TestClient, csrf: str, version: int, name: str = "digest"):
    return client.post(
        f"/admin/templates/{name}/publish", data={"version": str(version), "csrf_token": csrf}
    )


def test_saves_are_versions_with_a_diff_and_restore_adds_a_version(client: TestClient) -> None:
    csrf = signed_in(client, EDITOR)
    first = _save(client, csrf, subject="First {{ subscriber.first_name }}")
    assert "Saved as version 1." in first
    assert "Saved as version 2." in _save(client, csrf, subject="Second pick for you")
    assert "No changes to save." in _save(client, csrf, subject="Second pick for you")
    diff = client.get("/admin/templates/digest/diff?old=1&new=2")
    assert diff.status_code == 200
    assert "-First {{ subscriber.first_name }}" in diff.text
    assert "+Second pick for you" in diff.text and "MJML" not in diff.text  # unchanged parts
    restored = client.post(
        "/admin/templates/digest/restore", data={"version": "1", "csrf_token": csrf}
    )
    page = client.get(restored.headers["location"]).text
    assert "Restored version 1 as version 3." in page
    assert "First {{ subscriber.first_name }}" in page
    history = client.get("/admin/templates/digest?version=2").text
    assert "Second pick for you" in history and "Editing: version 2" in history
    assert "Version history" in page and page.count("draft") >= 3
    listing = client.get("/admin/templates").text
    assert "version 3" in listing and "the shipped files" in listing


def _run_subjects(engine: Engine, *, at: int) -> list[str]:
    """Plan and deliver a new run of 'weekly' `at` days later; the subjects it sent."""
    when = NOW + timedelta(days=at)
    planned = plan_run(
        engine,
        campaign="weekly",
        now=when,
        settings=Settings(),
        source_factory=popularity_slot_source,
    )
    transport = MemoryTransport()
    dispatch_run(engine, run_id=planned.run_id, transport=transport, settings=Settings(), now=when)
    assert transport.sent
    parsed: list[EmailMessage] = [message_from_bytes(m.data) for m in transport.sent]
    return [str(p["Subject"]) for p in parsed]


def test_lint_errors_block_publishing_and_the_next_run_uses_the_published_version(
    client: TestClient, engine: Engine
) -> None:
    csrf = signed_in(client, ADMIN)
    _save(client, csrf, subject="Spring picks for {{ subscriber.frist_name }}")
    refused = _publish(client, csrf, 1)
    assert refused.status_code == 400 and "was not published" in refused.text
    assert "did you mean &#39;first_name&#39;" in refused.text and "Subject, line 1" in refused.text
    with engine.connect() as c:
        assert c.execute(select(Template.current_version)).scalar() is None  # type: ignore[call-overload]
    assert not any("Spring" in s for s in _run_subjects(engine, at=7))  # shipped files still
    _save(client, csrf, subject="Spring picks for {{ subscriber.first_name }}")
    published = _publish(client, csrf, 2)
    assert published.status_code == 303
    assert "Published version 2" in client.get(published.headers["location"]).text
    _save(client, csrf, subject="Summer draft, never published")  # version 3 stays a draft
    subjects = _run_subjects(engine, at=14)
    assert subjects and all(s.startswith("Spring picks for ") for s in subjects)
    page = client.get("/admin/templates/digest").text
    assert "Published: version 2" in page and "Publish version 3" in page


def test_live_preview_renders_a_real_subscriber_s_picks_and_reasons(
    client: TestClient, engine: Engine, ui_world: UiWorld
) -> None:
    csrf = signed_in(client, EDITOR)
    answer = client.post(
        "/admin/templates/digest/preview",
        json={**SHIPPED, "subscriber": ui_world.email},
        headers={"X-CSRF-Token": csrf},
    )
    data = answer.json()
    assert answer.status_code == 200 and data["issues"] == []
    assert f"run {ui_world.run_id} of weekly" in data["data"] and ui_world.email in data["data"]
    with engine.connect() as c:
        rows = c.execute(
            select(Item.title, Slot.reason_text)  # type: ignore[call-overload]
            .join(Slot, Slot.item_id == Item.id)
            .join(Message, Message.id == Slot.message_id)
            .where(Message.subscriber_id == ui_world.subscriber_id)
        ).all()
    assert len(rows) >= 3
    html = data["html"]
    assert all(str(escape(title)) in html for title, _ in rows)  # their real picks
    assert all(str(escape(reason)) in html for _, reason in rows)  # and the reasons
    assert "/t/o/" in html  # tracked, but signed for the preview: it records nothing
    sample = client.post(
        "/admin/templates/digest/preview",
        json={**SHIPPED, "subscriber": ""},
        headers={"X-CSRF-Token": csrf},
    ).json()
    assert "sample subscriber" in sample["data"] and "Ada" in sample["html"]
    unknown = client.post(
        "/admin/templates/digest/preview",
        json={**SHIPPED, "subscriber": "nobody@nowhere.example"},
        headers={"X-CSRF-Token": csrf},
    )
    assert unknown.status_code == 400 and "no subscriber" in unknown.json()["error"]


def test_a_broken_template_shows_lint_errors_at_their_lines(client: TestClient) -> None:
    csrf = signed_in(client, EDITOR)
    lines = SHIPPED["mjml"].splitlines()
    lines[5] = lines[5] + " {{ subscriber.nmae }}"
    broken = "\n".join(lines)
    data = client.post(
        "/admin/templates/digest/preview",
        json={**SHIPPED, "mjml": broken, "text": "Hi\n\n{% if %}"},
        headers={"X-CSRF-Token": csrf},
    ).json()
    assert data["html"] is None
    found = {(i["part"], i["line"]) for i in data["issues"]}
    assert ("mjml", 6) in found and ("text", 3) in found
    message = next(i["message"] for i in data["issues"] if i["part"] == "mjml")
    assert "nmae" in message and "did you mean 'name'" in message


def test_a_test_email_goes_through_the_configured_transport(
    client: TestClient, ui_settings: Settings, ui_world: UiWorld
) -> None:
    csrf = signed_in(client, EDITOR)
    answer = client.post(
        "/admin/templates/digest/test-send",
        data={
            **SHIPPED,
            "subject": "Unsaved {{ subscriber.first_name }}",
            "test_to": "marketer@example.org",
            "subscriber": ui_world.email,
            "csrf_token": csrf,
        },
    )
    assert answer.status_code == 200 and "Test email sent to marketer@example.org" in answer.text
    assert "Unsaved {{ subscriber.first_name }}" in answer.text  # the edits are still there
    outbox = Path(ui_settings.smtp_url.removeprefix("outbox:"))
    (sent,) = list(outbox.glob("*.eml"))
    message = message_from_bytes(sent.read_bytes())
    assert message["To"].endswith("<marketer@example.org>")
    assert message["Subject"].startswith("[Test] Unsaved ")
    bad = client.post(
        "/admin/templates/digest/test-send",
        data={**SHIPPED, "test_to": "not an address", "csrf_token": csrf},
    )
    assert bad.status_code == 400 and "is not an email address" in bad.text
    assert len(list(outbox.glob("*.eml"))) == 1


def test_a_new_template_starts_from_its_kind_and_needs_publishing(
    client: TestClient,
) -> None:
    csrf = signed_in(client, EDITOR)
    made = client.post(
        "/admin/templates", data={"name": "spring-offer", "kind": "trigger", "csrf_token": csrf}
    )
    assert made.status_code == 303 and made.headers["location"].startswith(
        "/admin/templates/spring-offer"
    )
    page = client.get("/admin/templates/spring-offer").text
    assert "Kind: trigger" in page and "none yet, so runs cannot use it" in page
    clash = client.post(
        "/admin/templates", data={"name": "digest", "kind": "digest", "csrf_token": csrf}
    )
    assert clash.status_code == 400 and "exists already" in clash.text
    bad = client.post(
        "/admin/templates", data={"name": "Bad Name", "kind": "digest", "csrf_token": csrf}
    )
    assert bad.status_code == 400 and "lowercase letters" in bad.text
