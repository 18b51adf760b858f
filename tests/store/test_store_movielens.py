"""MovieLens import through the CLI: the counts the issue names, and a safe re-import."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from newsletter.cli import app
from testsupport import movielens_dir

runner = CliRunner()


@pytest.fixture
def database_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NEWSLETTER_DATABASE_URL", f"sqlite:///{tmp_path / 'ml.db'}")
    return tmp_path


def test_import_movielens_then_stats(database_env: Path) -> None:
    folder = movielens_dir()
    if not (folder / "ratings.csv").is_file():
        pytest.skip(f"MovieLens data not found at {folder}")
    for _ in range(2):  # importing twice adds nothing twice
        result = runner.invoke(app, ["import", "movielens", str(folder)])
        assert result.exit_code == 0, result.output
    stats = runner.invoke(app, ["stats", "--json"])
    assert stats.exit_code == 0, stats.output
    assert json.loads(stats.output) == {"subscribers": 610, "items": 9742, "interactions": 100836}


def test_movielens_folder_errors_are_clear(database_env: Path) -> None:
    result = runner.invoke(app, ["import", "movielens", str(database_env)])
    assert result.exit_code == 2
    assert "no ratings.csv" in result.output


def test_small_movielens_folder_maps_genres_tags_and_ratings(database_env: Path) -> None:
    folder = database_env / "ml"
    folder.mkdir()
    (folder / "movies.csv").write_text(
        "movieId,title,genres\n1,Alpha (1999),Drama|Comedy\n"
        '2,"Beta, The (2001)",(no genres listed)\n'
    )
    (folder / "ratings.csv").write_text(
        "userId,movieId,rating,timestamp\n7,1,4.5,1000000000\n7,2,2.0,1000000100\n"
    )
    (folder / "tags.csv").write_text("userId,movieId,tag,timestamp\n7,1,slow burn,1000000200\n")
    assert runner.invoke(app, ["import", "movielens", str(folder)]).exit_code == 0
    from sqlalchemy import text

    from newsletter.config import load_settings
    from newsletter.db import make_engine

    engine = make_engine(load_settings().resolved_database_url)
    with engine.connect() as connection:
        items = connection.execute(
            text("SELECT external_key, summary, topics, attributes FROM item ORDER BY id")
        ).all()
        ratings = connection.execute(text("SELECT kind, value FROM interaction ORDER BY value"))
        assert [tuple(r) for r in ratings] == [("rating", 2.0), ("rating", 4.5)]
    assert [(k, s, json.loads(t), json.loads(a)) for k, s, t, a in items] == [
        ("1", "slow burn", ["Drama", "Comedy"], {"year": 1999}),
        ("2", "", [], {"year": 2001}),
    ]
