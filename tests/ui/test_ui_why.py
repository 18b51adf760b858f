"""The subscriber page's "why" asks ``why`` with the server's settings, as ``newsletter why``
does: the campaign's segment comes from ``settings.segment_folder``, times are shown in the
subscriber's timezone, and the arm's Feedback-ID code is given."""

from __future__ import annotations

from datetime import UTC
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from ui_world import NOW, SECRET, VIEWER, UiWorld, signed_in

from newsletter.config import Settings
from newsletter.db import as_utc, session_scope
from newsletter.models import Campaign, Message, Subscriber
from newsletter.plan.experiments import feedback_code
from newsletter.plan.planner import plan_run
from newsletter.plan.sources import popularity_slot_source

EUROPE = "rule:\n  all:\n    - status: active\n    - timezone: Europe/\n"


@pytest.fixture
def ui_settings(ui_settings: Settings, own: Path) -> Settings:
    """The conftest settings with the user's own segment folder (conftest's `own`)."""
    return ui_settings.model_copy(update={"segments_dir": str(own)})


def _vip_campaign(engine: Engine, own: Path) -> int:
    """A campaign whose segment exists only in the user's own folder, planned with it."""
    (own / "vip.yaml").write_text(EUROPE, encoding="utf-8")
    with session_scope(engine) as s:
        weekly = s.execute(select(Campaign).where(Campaign.name == "weekly")).scalar_one()  # type: ignore[call-overload]
        s.add(
            Campaign(
                name="vip",
                template_name="digest",
                segment_name="vip",
                config=weekly.config,
                created_at=NOW,
            )
        )
    return plan_run(
        engine,
        campaign="vip",
        now=NOW,
        settings=Settings(segments_dir=str(own)),
        source_factory=popularity_slot_source,
    ).run_id


def test_why_in_the_ui_resolves_the_campaigns_segment_from_the_configured_folder(
    client: TestClient, engine: Engine, own: Path
) -> None:
    run_id = _vip_campaign(engine, own)
    with engine.connect() as c:
        inside = set(
            c.execute(select(Message.subscriber_id).where(Message.run_id == run_id)).scalars()
        )  # type: ignore[call-overload]
        rows = c.execute(select(Subscriber.id, Subscriber.status)).all()  # type: ignore[call-overload]
    outside = next(i for i, status in rows if i not in inside and status == "active")
    signed_in(client, VIEWER)
    page = client.get(f"/admin/subscribers/{outside}?campaign=vip").text
    assert f"Not sent in run {run_id}: they are not in segment &#39;vip&#39;." in page
    assert "unknown segment" not in page


def test_why_in_the_ui_shows_local_times_and_the_feedback_id_code(
    client: TestClient, engine: Engine, ui_world: UiWorld
) -> None:
    with engine.connect() as c:
        arm, sent_at, planned_for = c.execute(
            select(Message.arm, Message.sent_at, Message.planned_for).where(  # type: ignore[call-overload]
                Message.run_id == ui_world.run_id, Message.subscriber_id == ui_world.subscriber_id
            )
        ).one()
        tz = c.execute(
            select(Subscriber.timezone).where(Subscriber.id == ui_world.subscriber_id)  # type: ignore[call-overload]
        ).scalar_one()
    assert tz and tz != "UTC"  # the local time differs from the UTC one
    signed_in(client, VIEWER)
    page = client.get(f"/admin/subscribers/{ui_world.subscriber_id}?campaign=weekly").text
    code = feedback_code(arm, secret_key=SECRET)
    assert f"<dt>Arm</dt><dd>{arm} (Feedback-ID code {code})</dd>" in page
    zone = tz
    for label, moment in (("Planned for", planned_for), ("Sent at", sent_at)):
        utc = as_utc(moment)
        local = utc.astimezone(ZoneInfo(zone))
        shown = f"{local:%H:%M}" if local.date() == utc.date() else f"{local:%Y-%m-%d %H:%M}"
        expected = f"{utc.astimezone(UTC):%Y-%m-%d %H:%M} UTC ({shown} {zone}, their time)"
        assert f"<dt>{label}</dt><dd>{expected}</dd>" in page
    assert "<dt>Why then</dt><dd>due at the campaign&#39;s send hour" in page
