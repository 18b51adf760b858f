"""`newsletter bounces import PATH`: DSN and ARF reports suppress the right addresses."""

from __future__ import annotations

import json
import mailbox
import os
from pathlib import Path

import pytest
from api_world import SECRET, build_world, events, subscriber, suppressions
from typer.testing import CliRunner

from newsletter import cli
from newsletter.config import Settings
from newsletter.db import make_engine, upgrade
from newsletter.render.render import message_id_header

FIXTURES = Path(__file__).parents[1] / "track" / "fixtures"


def test_bounces_import_records_reports_from_an_mbox(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in list(os.environ):
        if name.startswith("NEWSLETTER_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'n.db'}"
    monkeypatch.setenv("NEWSLETTER_DATABASE_URL", url)
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", SECRET)
    engine = make_engine(url)
    upgrade(engine)
    world = build_world(engine)
    mid = message_id_header(world.message_id, settings=Settings(secret_key=SECRET))
    box = mailbox.mbox(tmp_path / "bounces.mbox")
    for name in ("dsn_postfix.eml", "arf_abuse.eml"):
        data = (FIXTURES / name).read_bytes()
        box.add(
            data.replace(b"__EMAIL__", world.email.encode()).replace(
                b"__MESSAGE_ID__", mid.encode()
            )
        )
    box.add(b"From: a@example.com\r\nSubject: out of office\r\n\r\nI am away.\r\n")
    box.flush()
    result = CliRunner().invoke(
        cli.app, ["bounces", "import", str(tmp_path / "bounces.mbox"), "--json"]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["reports"] == 2 and len(summary["skipped"]) == 1
    assert summary["recipients"] == {"suppressed": 2, "unknown": 1}  # other@example.org: soft
    assert {s.email: s.reason for s in suppressions(engine)} == {world.email: "complained"}
    assert subscriber(engine, world.subscriber_id).status == "complained"
    assert [(e.kind, e.message_id) for e in events(engine)] == [
        ("bounce", world.message_id),
        ("complaint", world.message_id),
    ]
    again = CliRunner().invoke(cli.app, ["bounces", "import", str(tmp_path / "bounces.mbox")])
    assert "2 duplicate" in again.output and len(events(engine)) == 2
    missing = CliRunner().invoke(cli.app, ["bounces", "import", "nowhere.mbox"])
    assert missing.exit_code == 2 and "does not exist" in missing.output
