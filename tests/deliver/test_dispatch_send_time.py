"""Messages go out at the subscriber's local send time: a run sends what is due, then waits;
quiet hours are checked again when a message actually goes out."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from dispatch_data import DISPATCH_NOW, seed_dispatch_world
from sqlalchemy import Engine, select
from typer.testing import CliRunner

from newsletter.cli import app
from newsletter.config import Settings
from newsletter.plan.cadence import in_quiet_hours
from newsletter.plan.experiments import feedback_code
from newsletter.plan.why import why
from newsletter.tables import message_table, run_table, subscriber_table
from testsupport import STRONG_SECRET

pytestmark = pytest.mark.timeout(120)
QUIET = (time(21), time(8))  # the campaign's default quiet hours


def _messages(engine: Engine) -> list[tuple[str, datetime, datetime | None, str | None, str]]:
    """(status, planned_for, sent_at, reason, subscriber timezone) of every message."""
    m, s = message_table.c, subscriber_table.c
    query = select(m.status, m.planned_for, m.sent_at, m.reason, s.timezone).join(
        subscriber_table,
        s.id == m.subscriber_id,
    )
    with engine.connect() as c:
        return [tuple(r) for r in c.execute(query)]  # type: ignore[misc]


def _run_status(engine: Engine) -> str:
    with engine.connect() as c:
        return str(c.execute(select(run_table.c.status)).scalar_one())


@pytest.fixture
def cli(sqlite_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NEWSLETTER_DATABASE_URL", str(sqlite_engine.url))
    monkeypatch.setenv("NEWSLETTER_CONFIG", str(tmp_path / "absent.toml"))
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", STRONG_SECRET)
    seed_dispatch_world(sqlite_engine, subscribers=40)
    outbox = f"outbox:{tmp_path / 'out'}"

    def invoke(*args: str, now: datetime) -> str:
        result = CliRunner().invoke(app, [*args, "--now", now.isoformat(), "--transport", outbox])
        assert result.exit_code == 0, result.output
        return result.output

    return invoke


def test_run_sends_only_due_messages_and_resume_sends_the_rest(
    cli, sqlite_engine: Engine, tmp_path: Path
) -> None:
    # The run is scheduled at DISPATCH_NOW: every local 08:00 is still ahead, nothing is due.
    first = cli("run", "weekly", now=DISPATCH_NOW)
    live = [r for r in _messages(sqlite_engine) if r[0] in {"planned", "sent"}]
    assert live and all(r[0] == "planned" and r[1] >= DISPATCH_NOW for r in live)
    assert f"{len(live)} messages wait for their subscribers' local send time" in first
    assert _run_status(sqlite_engine) == "waiting"

    midday = DISPATCH_NOW + timedelta(hours=7)  # 12:00 UTC: Europe's 08:00 has come
    cli("run", "resume", "1", now=midday)
    rows = [r for r in _messages(sqlite_engine) if r[0] in {"planned", "sent"}]
    due = [r for r in rows if r[1] <= midday]
    assert due and len(due) < len(rows)
    assert all(r[0] == "sent" for r in due) and all(
        r[0] == "planned" for r in rows if r[1] > midday
    )

    # Tuesday 05:00 UTC sends Asia and Australia (their Tuesday 08:00 came overnight) and
    # defers the Americas, where it is night again; Tuesday 15:00 UTC sends those.
    cli("run", "resume", "1", now=DISPATCH_NOW + timedelta(days=1))
    cli("run", "resume", "1", now=DISPATCH_NOW + timedelta(hours=34))
    statuses = [r[0] for r in _messages(sqlite_engine)]
    assert statuses.count("planned") == 0 and statuses.count("sent") == len(rows)
    assert len(list((tmp_path / "out").glob("*.eml"))) == len(rows)
    assert _run_status(sqlite_engine) == "delivered"


def test_a_late_pass_never_sends_inside_quiet_hours_and_defers_to_their_end(
    cli, sqlite_engine: Engine
) -> None:
    cli("run", "weekly", now=DISPATCH_NOW)
    late = DISPATCH_NOW + timedelta(hours=20)  # Tue 01:00 UTC: night in Europe and New York
    cli("run", "resume", "1", now=late)
    rows = [r for r in _messages(sqlite_engine) if r[0] in {"planned", "sent"}]
    deferred = [r for r in rows if r[3] == "quiet_hours_deferred" and r[0] == "planned"]
    assert deferred  # Europe's messages were due (Monday 08:00) but it is now 02:00-03:00 there
    for _, planned_for, _, _, tz in deferred:
        local = planned_for.astimezone(ZoneInfo(tz))
        assert planned_for > late and local.time() == time(8)  # the end of their quiet hours
    cli("run", "resume", "1", now=late + timedelta(hours=11))  # Tue 12:00 UTC: day everywhere due
    rows = _messages(sqlite_engine)
    sent = [r for r in rows if r[0] == "sent"]
    assert len(sent) == len([r for r in rows if r[0] != "skipped"])
    for _, _, sent_at, _, tz in sent:
        assert sent_at is not None
        assert not in_quiet_hours(sent_at.astimezone(ZoneInfo(tz)).time(), QUIET)
    _why_tells_when_and_why_it_went_out(sqlite_engine)


def _why_tells_when_and_why_it_went_out(engine: Engine) -> None:
    m = message_table.c
    with engine.connect() as c:
        sid, sent_at = c.execute(
            select(m.subscriber_id, m.sent_at).where(
                m.status == "sent", m.reason == "quiet_hours_deferred"
            )
        ).first()  # type: ignore[misc]
    answer = why(engine, subscriber=str(sid), campaign="weekly", settings=Settings())
    assert answer.outcome == "sent" and answer.sent_at == sent_at
    tz = ZoneInfo(answer.timezone)  # type: ignore[arg-type]
    assert answer.planned_for.astimezone(tz).time() == time(8)  # type: ignore[union-attr]
    text = "\n".join(answer.lines())
    assert f"{sent_at.astimezone(tz):%Y-%m-%d %H:%M} {answer.timezone}" in answer.summary
    late = (sent_at - answer.planned_for).total_seconds() / 3600  # type: ignore[operator]
    assert late > 0.25 and f"sent {late:.1f} h after its planned time" in text
    assert "send hour 08:00 their time, the first one at or after" in text
    assert "quiet hours (21:00-08:00), so it waited until 08:00" in text
    assert f"Feedback-ID code {feedback_code(answer.arm, secret_key=Settings().secret_key)}" in text
