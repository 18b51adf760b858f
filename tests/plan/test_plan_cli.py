"""The planning commands: segment preview, plan and why, end to end on a SQLite file."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from newsletter.cli import app
from newsletter.db import make_engine, session_scope, upgrade
from newsletter.models import Campaign, Interaction, Item, Subscriber, Suppression

NOW = datetime(2026, 6, 1, 5, tzinfo=UTC)


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    engine = make_engine(url)
    upgrade(engine)
    with session_scope(engine) as s:
        for i in range(1, 5):
            s.add(
                Subscriber(
                    id=i,
                    email=f"s{i}@x.org",
                    created_at=NOW - timedelta(days=10 * i - 5),
                    updated_at=NOW,
                )
            )
        for j in range(1, 9):
            s.add(
                Item(
                    id=j,
                    external_key=f"i{j}",
                    title=f"Item {j}",
                    url="u",
                    updated_at=NOW,
                    published_at=NOW - timedelta(days=j),
                )
            )
        s.flush()
        s.add(Interaction(subscriber_id=4, item_id=1, kind="read", occurred_at=NOW))
        s.add(Suppression(email="s2@x.org", reason="bounced", created_at=NOW))
        config = {"ranker": "popularity", "n_items": 3, "arms": {"popular": 0}}
        s.add(Campaign(name="weekly", template_name="digest", created_at=NOW, config=config))
    engine.dispose()
    monkeypatch.setenv("NEWSLETTER_DATABASE_URL", url)
    monkeypatch.setenv("NEWSLETTER_CONFIG", str(tmp_path / "none.toml"))
    return url


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def test_segment_preview_prints_count_and_sample(database: str) -> None:
    code, out = run("segment", "preview", "everyone", "--json", "--sample", "2")
    assert code == 0
    data = json.loads(out)
    assert data["count"] == 4 and [r["id"] for r in data["sample"]] == [1, 2]
    code, out = run("segment", "preview", "new-subscribers", "--at", NOW.isoformat())
    assert code == 0 and "1 subscribers" in out


def test_unknown_segment_is_a_clear_error(database: str) -> None:
    code, out = run("segment", "preview", "nobody")
    assert code == 2 and "unknown segment 'nobody'" in out and "everyone" in out


def test_plan_then_why(database: str) -> None:
    code, out = run("plan", "weekly", "--now", NOW.isoformat(), "--json")
    assert code == 0, out
    stats = json.loads(out)
    assert stats["planned"] == 3 and stats["skipped"] == {"suppressed": 1}
    code, out = run("why", "s2@x.org", "--campaign", "weekly", "--json")
    assert code == 0 and json.loads(out)["reason"] == "suppressed"
    code, out = run("why", "1", "--campaign", "weekly")
    assert code == 0 and "Planned in run" in out and "Popular" not in out.split("\n")[0]
    code, out = run("why", "9", "--campaign", "weekly")
    assert code == 2 and "no subscriber" in out
