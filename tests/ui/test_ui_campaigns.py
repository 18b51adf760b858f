"""Campaign pages and a person's run control (pause, resume then deliver, cancel); segments
(live count and sample, save, sql rules for admins only); subscriber lookup with why."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from pathlib import Path

from fastapi.testclient import TestClient
from markupsafe import escape
from sqlalchemy import Engine, func, select
from ui_world import ADMIN, EDITOR, NOW, VIEWER, Clock, UiWorld, signed_in

from newsletter.config import Settings
from newsletter.models import Message, Slot
from newsletter.plan.planner import plan_run, resolve_segment
from newsletter.plan.sources import popularity_slot_source
from newsletter.store import runs
from newsletter.store.segments import segment_ids


def _statuses(engine: Engine, run_id: int) -> Counter[str]:
    with engine.connect() as c:
        rows = c.execute(select(Message.status).where(Message.run_id == run_id)).scalars()  # type: ignore[call-overload]
        return Counter(rows)


def _deferred(engine: Engine, run_id: int) -> int:
    """Unsent messages of the run that wait for the end of their reader's quiet hours."""
    with engine.connect() as c:
        query = select(func.count()).where(
            Message.run_id == run_id,  # type: ignore[arg-type]
            Message.status == "planned",  # type: ignore[arg-type]
            Message.reason == "quiet_hours_deferred",  # type: ignore[arg-type]
        )
        return int(c.execute(query).scalar_one())


def _new_run(engine: Engine, days: int) -> int:
    return plan_run(
        engine,
        campaign="weekly",
        now=NOW + timedelta(days=days),
        settings=Settings(),
        source_factory=popularity_slot_source,
    ).run_id


def test_the_campaign_pages_show_split_runs_counts_and_the_report(
    client: TestClient, ui_world: UiWorld
) -> None:
    signed_in(client, VIEWER)
    listing = client.get("/admin/campaigns").text
    assert "weekly" in listing and "personalized 80% · popular 20%" in listing
    assert "on demand (no schedule)" in listing
    assert f"run {ui_world.run_id}, delivered: 24 sent" in listing
    page = client.get("/admin/campaigns/weekly").text
    assert "Lift of personalization over the popularity holdout" in page
    assert f'src="/admin/runs/{ui_world.run_id}/report"' in page
    assert "24 sent" in page and "/admin/runs/1/" + "pause" not in page  # viewers: no controls
    report = client.get(f"/admin/runs/{ui_world.run_id}/report")
    assert report.status_code == 200 and "human click rate" in report.text
    assert report.headers["content-security-policy"].startswith("default-src 'none'")
    assert client.get("/admin/campaigns/nope").status_code == 404


def test_pause_resume_and_cancel_from_the_campaign_page(
    client: TestClient, engine: Engine, clock: Clock, ui_settings: Settings
) -> None:
    csrf = signed_in(client, ADMIN)
    run_id = _new_run(engine, 7)
    planned = _statuses(engine, run_id)["planned"]
    assert planned > 10
    page = client.get("/admin/campaigns/weekly").text
    assert f'action="/admin/runs/{run_id}/pause"' in page
    paused = client.post(f"/admin/runs/{run_id}/pause", data={"csrf_token": csrf})
    assert paused.status_code == 303 and "paused" in client.get(paused.headers["location"]).text
    assert runs.run_status(engine, run_id=run_id) == "held"
    assert "paused by a person" in client.get("/admin/campaigns/weekly").text
    again = client.post(f"/admin/runs/{run_id}/pause", data={"csrf_token": csrf})
    assert again.status_code == 400 and "only a run still sending can be paused" in again.text
    clock.advance(days=8)  # every planned send time has come (and the session expired)
    client.cookies.clear()
    csrf = signed_in(client, ADMIN)
    resumed = client.post(f"/admin/runs/{run_id}/resume", data={"csrf_token": csrf})
    assert resumed.status_code == 303  # the background delivery has run when the call returns
    assert runs.run_status(engine, run_id=run_id) != "held"
    # Everything due went out; what falls in its reader's quiet hours now waits for their end.
    sent = _statuses(engine, run_id)["sent"]
    assert sent > 0 and _statuses(engine, run_id) == Counter(
        {"sent": sent} | ({"planned": planned - sent} if planned > sent else {})
    )
    assert _deferred(engine, run_id) == planned - sent
    outbox = Path(ui_settings.smtp_url.removeprefix("outbox:"))
    assert len(list(outbox.glob("*.eml"))) == sent
    other = _new_run(engine, 14)
    todo = _statuses(engine, other)["planned"]
    cancelled = client.post(f"/admin/runs/{other}/cancel", data={"csrf_token": csrf})
    text = client.get(cancelled.headers["location"]).text
    assert f"{todo} unsent messages skipped" in text
    assert _statuses(engine, other) == Counter({"skipped": todo})
    assert runs.run_status(engine, run_id=other) == "cancelled"
    assert client.post("/admin/runs/999/pause", data={"csrf_token": csrf}).status_code == 400


def test_segment_rules_count_and_sample_live_and_save_for_planning(
    client: TestClient, engine: Engine
) -> None:
    csrf = signed_in(client, EDITOR)
    rule = (
        "description: Readers in Europe\nrule:\n  all:\n"
        "    - status: active\n    - timezone: Europe/\n"
    )
    checked = client.post(
        "/admin/segments/europe/check", json={"definition": rule}, headers={"X-CSRF-Token": csrf}
    ).json()
    expected = segment_ids(
        engine, definition=resolve_segment(engine, "everyone"), now=NOW
    )  # a superset, to compare against
    assert checked["error"] is None and 0 < checked["count"] <= len(expected)
    assert len(checked["sample"]) == min(10, checked["count"])
    assert all(s["timezone"].startswith("Europe/") for s in checked["sample"])
    typo = client.post(
        "/admin/segments/europe/check",
        json={"definition": "rule:\n  statuss: active\n"},
        headers={"X-CSRF-Token": csrf},
    ).json()
    assert typo["count"] is None and ":2: unknown key 'statuss'" in typo["error"]
    assert "did you mean 'status'" in typo["error"]
    saved = client.post("/admin/segments/europe", data={"definition": rule, "csrf_token": csrf})
    assert saved.status_code == 303
    assert f"{checked['count']} subscribers now" in client.get(saved.headers["location"]).text
    definition = resolve_segment(engine, "europe")
    assert len(segment_ids(engine, definition=definition, now=NOW)) == checked["count"]
    assert "europe" in client.get("/admin/segments").text
    sql = "rule:\n  sql: SELECT id FROM subscriber\n"
    refused = client.post("/admin/segments/raw", data={"definition": sql, "csrf_token": csrf})
    assert refused.status_code == 400 and "admins only" in refused.text
    client.cookies.clear()
    csrf = signed_in(client, ADMIN)
    allowed = client.post("/admin/segments/raw", data={"definition": sql, "csrf_token": csrf})
    assert allowed.status_code == 303


def test_subscriber_lookup_shows_arm_messages_slots_and_why(
    client: TestClient, engine: Engine, ui_world: UiWorld
) -> None:
    signed_in(client, VIEWER)
    found = client.get(f"/admin/subscribers?q={ui_world.email.split('@')[0]}").text
    assert f'href="/admin/subscribers/{ui_world.subscriber_id}"' in found
    page = client.get(f"/admin/subscribers/{ui_world.subscriber_id}").text
    assert ui_world.email in page and "Recent messages" in page
    assert f"weekly · run {ui_world.run_id}" in page and "sent" in page
    assert f"Sent in run {ui_world.run_id}" in page  # the why answer
    with engine.connect() as c:
        arm, slots = c.execute(
            select(Message.arm, func.count(Slot.id))  # type: ignore[call-overload]
            .join(Slot, Slot.message_id == Message.id)
            .where(Message.subscriber_id == ui_world.subscriber_id)
            .group_by(Message.arm)
        ).one()
        reasons = c.execute(
            select(Slot.reason_text, Slot.source)  # type: ignore[call-overload]
            .join(Message, Message.id == Slot.message_id)
            .where(Message.subscriber_id == ui_world.subscriber_id)
        ).all()
    assert slots == len(reasons) > 0
    assert f"<dt>Arm</dt><dd>{arm} " in page
    for reason, source in reasons:  # every pick with its reason and source, in both panels
        assert page.count(str(escape(reason))) >= 2 and f"source {source}" in page
    assert client.get("/admin/subscribers/99999").status_code == 404
    nothing = client.get("/admin/subscribers?q=zzzz-nobody").text
    assert "No subscriber matches" in nothing
