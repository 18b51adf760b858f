"""`newsletter campaign add/list`: create, update, validate."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from newsletter.cli import app

runner = CliRunner()


@pytest.fixture(autouse=True)
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NEWSLETTER_DATABASE_URL", f"sqlite:///{tmp_path / 'c.db'}")


def test_add_updates_and_lists(tmp_path: Path) -> None:
    settings = tmp_path / "weekly.yaml"
    settings.write_text("n_items: 6\narms:\n  popular: 0.2\n")
    first = runner.invoke(app, ["campaign", "add", "weekly", "--campaign-config", str(settings)])
    assert first.exit_code == 0, first.output
    again = runner.invoke(app, ["campaign", "add", "weekly", "--segment", "active-readers"])
    assert again.exit_code == 0, again.output
    listed = runner.invoke(app, ["campaign", "list"])
    assert listed.output.count("weekly") == 1
    assert "segment=active-readers" in listed.output


def test_invalid_settings_name_the_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"exploration_share": 0.9}')
    result = runner.invoke(app, ["campaign", "add", "x", "--campaign-config", str(bad)])
    assert result.exit_code == 2
    assert "exploration_share" in result.output
    assert runner.invoke(app, ["campaign", "list", "--json"]).output.strip() == "[]"
