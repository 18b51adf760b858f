"""The web UI finds segments as planning and the CLI do (``resolve_segment`` with
``settings.segment_folder``): the database first, then the user's own folder, then the shipped
files; it says where each comes from, and a segment defined in the user's own file is
read-only. The subscriber page's "why" uses the same settings as ``newsletter why``."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from markupsafe import escape
from sqlalchemy import Engine, select
from ui_world import BASE, EDITOR, NOW, SECRET, VIEWER, UiWorld, signed_in

from newsletter.config import Settings
from newsletter.db import shipped_path
from newsletter.models import Subscriber
from newsletter.plan.planner import resolve_segment
from newsletter.store.planning import segment_source
from newsletter.store.segments import save_segment, segment_ids

EUROPE = (
    "description: Readers in Europe\nrule:\n  all:\n    - status: active\n    - timezone: Europe/\n"
)


@pytest.fixture
def ui_settings(ui_settings: Settings, own: Path) -> Settings:
    """The conftest settings with the user's own segment folder (conftest's `own`)."""
    return ui_settings.model_copy(update={"segments_dir": str(own)})


def _europeans(engine: Engine) -> int:
    """Active subscribers in a Europe/ timezone, counted without the segment code."""
    with engine.connect() as c:
        rows = c.execute(select(Subscriber.timezone, Subscriber.status)).all()  # type: ignore[call-overload]
    return sum(1 for tz, status in rows if (tz or "").startswith("Europe/") and status == "active")


def test_the_users_own_file_is_listed_opened_and_counted_before_the_shipped_one(
    client: TestClient, engine: Engine, own: Path
) -> None:
    (own / "everyone.yaml").write_text(EUROPE, encoding="utf-8")  # shadows the shipped one
    (own / "premium.yml").write_text(EUROPE.replace("Europe", "Premium"), encoding="utf-8")
    signed_in(client, VIEWER)
    listing = client.get("/admin/segments").text
    assert f"your file <code>{own / 'everyone.yaml'}</code>" in listing
    assert f"your file <code>{own / 'premium.yml'}</code>" in listing
    shipped = shipped_path("segments") / "active-readers.yaml"
    assert f"the shipped file <code>{shipped}</code>" in listing
    assert listing.count('href="/admin/segments/everyone"') == 1  # listed once, as the file
    assert "Readers in Europe" in listing
    opened = client.get("/admin/segments/everyone").text
    assert f"Defined in <code>{own / 'everyone.yaml'}</code>; edit the file" in opened
    assert str(escape(EUROPE.splitlines()[0])) in opened and "timezone: Europe/" in opened
    expected = _europeans(engine)
    everybody = resolve_segment(engine, "all-known")
    assert 0 < expected < len(segment_ids(engine, definition=everybody, now=NOW))
    assert f'<p id="segment-count"><strong>{expected}</strong> subscribers</p>' in opened
    # the same definition planning resolves with the same folder
    planned = resolve_segment(engine, "everyone", folder=own)
    assert len(segment_ids(engine, definition=planned, now=NOW)) == expected


def test_a_segment_in_the_users_own_file_is_read_only(
    client: TestClient, engine: Engine, own: Path
) -> None:
    (own / "premium.yaml").write_text(EUROPE, encoding="utf-8")
    csrf = signed_in(client, EDITOR)
    opened = client.get("/admin/segments/premium").text
    assert "readonly" in opened and ">Save</button>" not in opened
    refused = client.post(
        "/admin/segments/premium",
        data={"definition": "rule: {status: active}\n", "csrf_token": csrf},
    )
    assert refused.status_code == 400
    assert f"segment &#39;premium&#39; is defined in {own / 'premium.yaml'}; edit that file" in (
        refused.text
    )
    assert segment_source(engine, name="premium") is None  # no row shadows the file
    shipped = client.get("/admin/segments/active-readers").text  # a shipped one is editable
    assert ">Save</button>" in shipped and "saving here stores a copy in the database" in shipped


def test_a_saved_row_wins_over_the_file_and_says_which_file_it_overrides(
    client: TestClient, engine: Engine, own: Path
) -> None:
    (own / "premium.yaml").write_text(EUROPE, encoding="utf-8")
    save_segment(
        engine, name="premium", definition="rule: {status: active}\n", description="All", now=NOW
    )
    csrf = signed_in(client, EDITOR)
    listing = client.get("/admin/segments").text
    assert f"the database (edited here); overrides <code>{own / 'premium.yaml'}</code>" in listing
    opened = client.get("/admin/segments/premium").text
    assert f"Saved in the database; it overrides <code>{own / 'premium.yaml'}</code>" in opened
    assert "rule: {status: active}" in opened and ">Save</button>" in opened
    saved = client.post("/admin/segments/premium", data={"definition": EUROPE, "csrf_token": csrf})
    assert saved.status_code == 303 and segment_source(engine, name="premium") == EUROPE


def test_a_broken_own_file_is_listed_with_its_error_not_a_traceback(
    client: TestClient, own: Path
) -> None:
    (own / "broken.yaml").write_text("rule:\n  statuss: active\n", encoding="utf-8")
    signed_in(client, VIEWER)
    listing = client.get("/admin/segments")
    assert listing.status_code == 200
    assert f"broken: {own / 'broken.yaml'}:2: unknown key &#39;statuss&#39;" in listing.text
    opened = client.get("/admin/segments/broken")
    assert opened.status_code == 200 and "Traceback" not in opened.text
    assert f"Defined in <code>{own / 'broken.yaml'}</code>" in opened.text
    assert "statuss: active" in opened.text


def test_without_a_configured_folder_the_working_directorys_segments_are_used(
    engine: Engine, ui_world: UiWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ui_world import Clock

    from newsletter.api.app import create_app

    work = tmp_path / "work"
    (work / "segments").mkdir(parents=True)
    (work / "segments" / "premium.yaml").write_text(EUROPE, encoding="utf-8")
    monkeypatch.chdir(work)
    settings = Settings(secret_key=SECRET, base_url=BASE, smtp_url="memory:")
    app = create_app(settings=settings, engine=engine, clock=Clock(NOW))
    with TestClient(app, base_url=BASE, follow_redirects=False) as client:
        signed_in(client, VIEWER)
        listing = client.get("/admin/segments").text
    assert f"your file <code>{work / 'segments' / 'premium.yaml'}</code>" in listing


def test_a_file_that_is_not_utf8_is_reported_by_name(client: TestClient, own: Path) -> None:
    (own / "latin.yaml").write_bytes(
        "description: caf\xe9\nrule: {status: active}\n".encode("latin-1")
    )
    signed_in(client, VIEWER)
    for url in ("/admin/segments", "/admin/segments/latin"):
        answer = client.get(url)
        assert answer.status_code == 200, url
        assert f"{own / 'latin.yaml'}:1: not UTF-8 text (byte 0xe9)" in answer.text
