"""`newsletter run list`: the runs and each shard's progress, read from the database."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from dispatch_data import DISPATCH_NOW, seed_dispatch_world
from sqlalchemy import Engine
from typer.testing import CliRunner

from newsletter import pipeline
from newsletter.cli import app
from newsletter.config import Settings
from newsletter.deliver.policy import DeliveryPolicy
from newsletter.deliver.shards import start_pass
from newsletter.report.progress import run_progress
from newsletter.store.delivery import run_counts
from newsletter.tasks import DeliverShard, Worker, database_url

pytestmark = pytest.mark.timeout(180)


def _cli(engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *args: str) -> str:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NEWSLETTER_DATABASE_URL", str(engine.url))
    monkeypatch.setenv("NEWSLETTER_CONFIG", str(tmp_path / "absent.toml"))
    result = CliRunner().invoke(app, ["run", "list", *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_run_list_shows_each_shard_as_it_is_planned_and_delivered(
    sqlite_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed_dispatch_world(sqlite_engine, subscribers=30)
    settings = Settings(secret_key="run-list-test-secret-0123456789abcdef")
    plan = pipeline.create_run(
        sqlite_engine, campaign="weekly", now=DISPATCH_NOW, settings=settings, shard_count=3
    )
    (before,) = run_progress(sqlite_engine, run_id=plan.run_id)
    assert [s.state for s in before.shards] == ["planning"] * 3
    assert sum(s.members for s in before.shards) == 30 == sum(s.unplanned for s in before.shards)

    pipeline.plan_run(sqlite_engine, run_id=plan.run_id, now=DISPATCH_NOW)
    policy = DeliveryPolicy(honour_send_time=False)
    start_pass(sqlite_engine, run_id=plan.run_id, now=DISPATCH_NOW, policy=policy)
    task = DeliverShard(database_url(sqlite_engine), plan.run_id, 1, f"outbox:{tmp_path / 'o'}")
    task.run(Worker(engine=sqlite_engine, settings=settings))  # one shard of three delivered

    data = json.loads(_cli(sqlite_engine, tmp_path, monkeypatch, str(plan.run_id), "--json"))
    (run,) = data
    assert (run["run_id"], run["campaign"], run["status"]) == (plan.run_id, "weekly", "delivering")
    assert [s["state"] for s in run["shards"]] == ["pending", "done", "pending"]
    assert run["shards_done"] == 1 and run["shard_count"] == 3
    counts = run_counts(sqlite_engine, run_id=plan.run_id).by_status
    assert sum(s["sent"] for s in run["shards"]) == counts["sent"] > 0
    assert run["shards"][1]["to_send"] == 0 and run["shards"][0]["to_send"] > 0
    text = _cli(sqlite_engine, tmp_path, monkeypatch, str(plan.run_id))
    assert f"run {plan.run_id} 'weekly'" in text and "shards done 1/3" in text
    assert "  shard 1: done; members" in text


def test_run_list_names_an_unknown_run(
    sqlite_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NEWSLETTER_DATABASE_URL", str(sqlite_engine.url))
    monkeypatch.setenv("NEWSLETTER_CONFIG", str(tmp_path / "absent.toml"))
    result = CliRunner().invoke(app, ["run", "list", "99"])
    assert result.exit_code == 2 and "there is no run 99" in result.output
    assert "Traceback" not in result.output
    bad = CliRunner().invoke(app, ["plan", "weekly", "--executor", "carrier-pigeon"])
    assert bad.exit_code == 2 and "unknown executor 'carrier-pigeon'" in bad.output
