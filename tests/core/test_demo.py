"""`newsletter demo`: one command builds the data and runs the pipeline to a report."""

from __future__ import annotations

import email
from email import policy
from pathlib import Path

from sqlalchemy import text
from typer.testing import CliRunner

from newsletter.cli import app
from newsletter.db import make_engine


def test_demo_runs_the_pipeline_end_to_end(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    result = CliRunner().invoke(
        app,
        [
            "demo",
            "--dir",
            str(folder),
            "--subscribers",
            "150",
            "--items",
            "60",
            "--interactions",
            "3000",
            "--now",
            "2026-06-01T05:00:00+00:00",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "demo ready" in result.output
    engine = make_engine(f"sqlite:///{folder / 'newsletter.db'}")
    with engine.connect() as connection:
        by = "SELECT {0}, count(*) FROM message GROUP BY {0}"
        counts = dict(connection.execute(text(by.format("status"))).all())
        arms = dict(connection.execute(text(by.format("arm"))).all())
        events = connection.execute(text("SELECT count(*) FROM event")).scalar_one()
        scheduled = connection.execute(text("SELECT scheduled_for FROM run")).scalar_one()
    engine.dispose()
    emails = sorted((folder / "outbox").glob("*.eml"))
    assert counts == {"sent": 150}
    assert str(scheduled).startswith("2026-06-01 05:00:00")  # the run happened as of --now
    assert len(emails) == 150
    assert set(arms) == {"personalized", "popular"}
    parsed = email.message_from_bytes(emails[0].read_bytes(), policy=policy.default)
    assert parsed.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in parsed.iter_parts()] == ["text/plain", "text/html"]
    assert events > 0
    report = (folder / "report.html").read_text()
    assert "Lift of personalization" in report and "personalized" in report
