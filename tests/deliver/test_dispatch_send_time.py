"""Messages go out at the subscriber's local send time: a run sends what is due, then waits."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from dispatch_data import DISPATCH_NOW, seed_dispatch_world
from sqlalchemy import Engine, select
from typer.testing import CliRunner

from newsletter.cli import app
from newsletter.models import Message, Run
from testsupport import STRONG_SECRET

pytestmark = pytest.mark.timeout(120)


def _messages(engine: Engine) -> list[tuple[str, object, object]]:
    m = Message.__table__.c  # type: ignore[attr-defined]
    with engine.connect() as c:
        return [tuple(r) for r in c.execute(select(m.status, m.planned_for, m.sent_at))]


def test_run_sends_only_due_messages_and_resume_sends_the_rest(
    sqlite_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NEWSLETTER_DATABASE_URL", str(sqlite_engine.url))
    monkeypatch.setenv("NEWSLETTER_CONFIG", str(tmp_path / "absent.toml"))
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", STRONG_SECRET)
    seed_dispatch_world(sqlite_engine, subscribers=40)
    outbox = f"outbox:{tmp_path / 'out'}"
    first = CliRunner().invoke(
        app, ["run", "weekly", "--now", DISPATCH_NOW.isoformat(), "--transport", outbox]
    )
    assert first.exit_code == 0, first.output
    rows = _messages(sqlite_engine)
    due = [r for r in rows if r[0] in {"planned", "sent"} and r[1] <= DISPATCH_NOW]  # type: ignore[operator]
    later = [r for r in rows if r[0] in {"planned", "sent"} and r[1] > DISPATCH_NOW]  # type: ignore[operator]
    assert due and later  # the world's timezones put some send hours before 05:00 UTC
    assert all(r[0] == "sent" for r in due)
    assert all(r[0] == "planned" for r in later)
    assert f"{len(later)} messages wait for their subscribers' local send time" in first.output
    with sqlite_engine.connect() as c:
        assert c.execute(select(Run.__table__.c.status)).scalar_one() == "waiting"  # type: ignore[attr-defined]

    next_day = (DISPATCH_NOW + timedelta(days=1)).isoformat()
    second = CliRunner().invoke(
        app, ["run", "resume", "1", "--now", next_day, "--transport", outbox]
    )
    assert second.exit_code == 0, second.output
    statuses = [r[0] for r in _messages(sqlite_engine)]
    assert statuses.count("planned") == 0
    assert statuses.count("sent") == len(due) + len(later)
    assert len(list((tmp_path / "out").glob("*.eml"))) == len(due) + len(later)
    with sqlite_engine.connect() as c:
        assert c.execute(select(Run.__table__.c.status)).scalar_one() == "delivered"  # type: ignore[attr-defined]
