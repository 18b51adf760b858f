"""Every command that writes time-stamped state takes --now (default: the clock)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from newsletter.cli import app
from newsletter.db import make_engine

runner = CliRunner()
THEN = datetime(2026, 5, 4, 8, 30, tzinfo=UTC)


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'n.db'}"
    monkeypatch.setenv("NEWSLETTER_DATABASE_URL", url)
    monkeypatch.setenv("NEWSLETTER_CONFIG", str(tmp_path / "newsletter.toml"))
    return url


def _rows(url: str, sql: str) -> list[tuple[object, ...]]:
    engine = make_engine(url)
    with engine.connect() as c:
        rows = [tuple(r) for r in c.execute(text(sql))]
    engine.dispose()
    return rows


def _stamp(value: object) -> datetime:
    """A time as SQLite returns it in a raw query (UTC text)."""
    return datetime.fromisoformat(str(value)).replace(tzinfo=UTC)


def test_campaign_add_records_the_given_time(database: str) -> None:
    result = runner.invoke(app, ["campaign", "add", "weekly", "--now", THEN.isoformat()])
    assert result.exit_code == 0, result.output
    [(created,)] = _rows(database, "SELECT created_at FROM campaign")
    assert _stamp(created) == THEN


def test_sync_and_csv_import_record_the_given_time(database: str, tmp_path: Path) -> None:
    shop = make_engine(f"sqlite:///{tmp_path / 'shop.db'}")
    with shop.begin() as c:
        c.execute(text("CREATE TABLE people (k VARCHAR(9), mail VARCHAR(99))"))
        c.execute(text("INSERT INTO people VALUES ('p1', 'ann@example.com')"))
    shop.dispose()
    (tmp_path / "newsletter.toml").write_text(
        f'[sources.shop]\nurl = "sqlite:///{tmp_path / "shop.db"}"\n'
        'subscribers = "SELECT k AS subscriber_key, mail AS email FROM people"\n',
        encoding="utf-8",
    )
    result = runner.invoke(app, ["sync", "--now", "2026-05-04T08:30:00Z"])
    assert result.exit_code == 0, result.output
    [(created, updated)] = _rows(database, "SELECT created_at, updated_at FROM subscriber")
    assert _stamp(created) == _stamp(updated) == THEN
    [(synced,)] = _rows(database, "SELECT updated_at FROM sync_state")
    assert _stamp(synced) == THEN

    csv = tmp_path / "people.csv"
    csv.write_text("subscriber_key,email\np2,bob@example.com\n", encoding="utf-8")
    later = "2026-05-05T09:00"  # naive: UTC
    result = runner.invoke(app, ["import", "csv", "--subscribers", str(csv), "--now", later])
    assert result.exit_code == 0, result.output
    rows = _rows(database, "SELECT external_key, created_at FROM subscriber ORDER BY id")
    assert [(k, _stamp(t)) for k, t in rows] == [
        ("p1", THEN),
        ("p2", datetime(2026, 5, 5, 9, tzinfo=UTC)),
    ]


@pytest.mark.parametrize(
    "command",
    [
        ["campaign", "add", "weekly"],
        ["sync"],
        ["import", "csv", "--subscribers", "people.csv"],
        ["import", "movielens", "."],
        ["demo", "--dir", "demo"],
    ],
)
def test_a_bad_now_is_a_clear_error(database: str, tmp_path: Path, command: list[str]) -> None:
    (tmp_path / "people.csv").write_text("subscriber_key,email\n", encoding="utf-8")
    (tmp_path / "newsletter.toml").write_text(
        '[sources.shop]\nurl = "sqlite:///shop.db"\nsubscribers = "SELECT 1"\n', encoding="utf-8"
    )
    result = runner.invoke(app, [*command, "--now", "next tuesday"])
    assert result.exit_code == 2
    assert "--now 'next tuesday' is not an ISO time" in result.output
    assert "Traceback" not in result.output
