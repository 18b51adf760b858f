"""`newsletter plan` and `newsletter run` with shards in worker processes (the process pool)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from dispatch_data import DISPATCH_NOW, seed_dispatch_world
from sqlalchemy import Engine, select
from typer.testing import CliRunner

from newsletter.cli import app
from newsletter.models import Message, Run
from newsletter.store.delivery import run_counts
from testsupport import STRONG_SECRET

pytestmark = pytest.mark.timeout(180)


def test_run_with_worker_processes_sends_each_message_once(
    sqlite_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NEWSLETTER_DATABASE_URL", str(sqlite_engine.url))
    monkeypatch.setenv("NEWSLETTER_CONFIG", str(tmp_path / "absent.toml"))
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", STRONG_SECRET)  # `run` refuses the default
    seed_dispatch_world(sqlite_engine, subscribers=30)
    now = ["--now", DISPATCH_NOW.isoformat()]
    planned = CliRunner().invoke(app, ["plan", "weekly", *now, "--shards", "3", "--workers", "2"])
    assert planned.exit_code == 0, planned.output
    run_id = int(re.search(r"^run (\d+) of 'weekly'", planned.output, re.M).group(1))  # type: ignore[union-attr]
    assert "30 subscribers in the segment" in planned.output  # all 30 planned in this pass:
    assert "nothing new" not in planned.output and "added to the run" not in planned.output

    outbox = tmp_path / "outbox"
    args = ["run", "weekly", *now, "--transport", f"outbox:{outbox}", "--send-all"]
    sent = CliRunner().invoke(app, [*args, "--shards", "3", "--workers", "2"])
    assert sent.exit_code == 0, sent.output
    assert f"run {run_id} of 'weekly'" in sent.output  # the run planned above, not a new one
    counts = run_counts(sqlite_engine, run_id=run_id)
    assert counts.total == 30 and set(counts.by_status) <= {"sent", "skipped"}
    assert len(list(outbox.glob("*.eml"))) == counts.by_status["sent"] >= 20
    assert f"sent {counts.by_status['sent']}, failed 0" in sent.output
    with sqlite_engine.connect() as c:
        status = c.execute(select(Run.status).where(Run.id == run_id)).scalar_one()  # type: ignore[call-overload,arg-type]
        shards = {s for (s,) in c.execute(select(Message.shard).where(Message.run_id == run_id))}  # type: ignore[call-overload,arg-type]
    assert status == "delivered" and shards == {0, 1, 2}
