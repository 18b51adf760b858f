"""`newsletter demo`: one command builds the data and runs the pipeline to a report."""

from __future__ import annotations

import email
import os
from email import policy
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from newsletter.cli import app
from newsletter.db import make_engine
from testsupport import assert_valid_email, free_port, serving


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
            "--weeks",
            "2",
            "--readers",
            "150",
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
    assert "pooled lift of personalization in human clicks" in result.output
    assert "simulated 2 weekly digests to 150 readers" in result.output
    sim = make_engine(f"sqlite:///{folder / 'simulation.db'}")
    with sim.connect() as connection:
        runs = connection.execute(text("SELECT count(*) FROM run")).scalar_one()
    sim.dispose()
    assert runs == 2  # the report pools two simulated weekly runs, not a one-shot


def test_demo_without_simulated_weeks_writes_no_report(tmp_path: Path) -> None:
    out = _demo(tmp_path / "demo")
    assert "pooled lift" not in out and "demo ready" in out
    assert not (tmp_path / "demo" / "report.html").exists()


def _demo(folder: Path) -> str:
    """Run `newsletter demo` small into folder; returns what it printed."""
    args = ["demo", "--dir", str(folder), "--subscribers", "60", "--items", "40", "--weeks", "0"]
    result = CliRunner().invoke(app, [*args, "--interactions", "1500"])
    assert result.exit_code == 0, result.output
    return result.output


def _first_link(path: Path, prefix: str) -> str:
    parsed = email.message_from_bytes(path.read_bytes(), policy=policy.default)
    text_part = parsed.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    return next(w for w in text_part.split() if w.startswith(prefix))


def test_demo_prints_plain_sentences_and_the_serve_command(tmp_path: Path) -> None:
    out = _demo(tmp_path / "demo")
    assert "{" not in out and "}" not in out  # no raw Python dicts
    assert "60 subscribers, 40 articles in" in out
    assert f"export NEWSLETTER_DATABASE_URL=sqlite:///{tmp_path / 'demo'}" in out
    assert "newsletter serve --demo" in out
    outbox = sorted((tmp_path / "demo" / "outbox").glob("*.eml"))
    assert outbox
    for path in outbox:
        raw = path.read_bytes().decode()
        assert 'src=3D"None"' not in raw and 'src="None"' not in raw
        assert_valid_email(path.read_bytes())  # no empty src, no visible None either
        parsed = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        assert parsed.get_body(("html",)).get_content().count("The Demo Daily") >= 2  # type: ignore[union-attr]


@pytest.mark.slow
def test_demo_links_work_under_serve_demo_as_the_readme_says(tmp_path: Path) -> None:
    """`newsletter demo`, then `NEWSLETTER_DATABASE_URL=… newsletter serve --demo`, then a
    click on a link from an outbox .eml redirects (302) to the item."""
    folder = tmp_path / "demo"
    _demo(folder)
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env["NEWSLETTER_DATABASE_URL"] = f"sqlite:///{folder / 'newsletter.db'}"
    eml = sorted((folder / "outbox").glob("*.eml"))[0]
    click = _first_link(eml, "http://localhost:8000/t/c/")
    unsubscribe = _first_link(eml, "http://localhost:8000/u/")
    engine = make_engine(env["NEWSLETTER_DATABASE_URL"])
    clicks = text("SELECT count(*) FROM event WHERE kind = 'click'")
    with engine.connect() as connection:
        urls = set(connection.execute(text("SELECT url FROM item")).scalars())
        before = connection.execute(clicks).scalar_one()
    with serving(["--demo"], cwd=tmp_path, env=env, port=free_port()) as base:
        local = click.replace("http://localhost:8000", base)
        response = httpx.get(local, follow_redirects=False, timeout=10)
        page = httpx.get(unsubscribe.replace("http://localhost:8000", base), timeout=10)
    with engine.connect() as connection:
        after = connection.execute(clicks).scalar_one()
    engine.dispose()
    assert response.status_code == 302, response.text[:300]
    assert response.headers["location"] in urls
    assert page.status_code == 200 and "broken" not in page.text.lower()
    assert after == before + 1
