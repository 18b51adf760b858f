"""`newsletter run CAMPAIGN | resume RUN | retry-failed RUN` with the outbox transport."""

from __future__ import annotations

import re
from email import message_from_bytes
from email.policy import default
from pathlib import Path

import pytest
from dispatch_data import DISPATCH_NOW, seed_dispatch_world
from sqlalchemy import Engine, update
from typer.testing import CliRunner

from newsletter.cli import app
from newsletter.models import Subscriber
from newsletter.store import delivery as store
from newsletter.tables import subscriber_table, suppression_table
from testsupport import STRONG_SECRET

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def cli_env(sqlite_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Engine:
    """The CLI pointed at the test's SQLite file, with one unsubscribed and one suppressed."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NEWSLETTER_DATABASE_URL", str(sqlite_engine.url))
    monkeypatch.setenv("NEWSLETTER_CONFIG", str(tmp_path / "absent.toml"))
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", STRONG_SECRET)
    seed_dispatch_world(sqlite_engine, subscribers=25)
    with sqlite_engine.begin() as c:
        c.execute(
            update(subscriber_table)
            .where(Subscriber.id == 2)  # type: ignore[attr-defined,arg-type]
            .values(status="unsubscribed")
        )
        c.execute(
            suppression_table.insert().values(
                email="reader5@example.com", reason="complained", created_at=DISPATCH_NOW
            )
        )
    return sqlite_engine


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["run", *args, "--send-all"])
    return result.exit_code, result.stdout + (result.stderr or "")


def printed_counts(output: str) -> dict[str, int]:
    """The `  status: n` and `  skipped reason: n` lines of the final report."""
    return {k: int(v) for k, v in re.findall(r"^  ([a-z_ ]+): (\d+)$", output, re.M)}


def test_run_with_outbox_writes_one_valid_eml_per_delivered_message(
    cli_env: Engine, tmp_path: Path
) -> None:
    outbox = tmp_path / "outbox"
    code, out = run("weekly", "--now", DISPATCH_NOW.isoformat(), "--transport", f"outbox:{outbox}")
    assert code == 0, out
    run_id = int(re.search(r"^run (\d+) of 'weekly'", out, re.M).group(1))  # type: ignore[union-attr]
    counts = store.run_counts(cli_env, run_id=run_id)
    files = sorted(outbox.glob("*.eml"))
    assert len(files) == counts.by_status["sent"] >= 20
    for path in files:
        parsed = message_from_bytes(path.read_bytes(), policy=default)
        assert parsed.get_content_type() == "multipart/alternative"
        assert [p.get_content_type() for p in parsed.iter_parts()] == ["text/plain", "text/html"]
        message_id, sequence = path.stem.rsplit("-", 1)  # <message-id>-<delivery attempt>
        assert parsed["Message-ID"] == f"<{message_id}>" and sequence == "1"
        assert parsed["To"] and parsed["Subject"] and parsed["List-Unsubscribe"]
    shown = printed_counts(out)
    assert {k: v for k, v in shown.items() if " " not in k} == counts.by_status
    skipped = {k.removeprefix("skipped "): v for k, v in shown.items() if k.startswith("skipped ")}
    assert skipped == counts.skipped == {"suppressed": 1, "unsubscribed": 1}

    code, again = run("resume", str(run_id), "--transport", f"outbox:{outbox}")
    assert code == 0 and "sent 0, failed 0, skipped 0 in this pass" in again
    assert printed_counts(again) == shown and len(list(outbox.glob("*.eml"))) == len(files)
    code, retried = run("retry-failed", str(run_id), "--transport", f"outbox:{outbox}")
    assert code == 0 and "sent 0" in retried and printed_counts(retried) == shown


def test_run_usage_errors_are_clear(cli_env: Engine) -> None:
    code, out = run("resume")
    assert code == 2 and "run resume needs a run id" in out
    code, out = run("nosuch", "--transport", "memory:")
    assert code == 2 and "unknown campaign 'nosuch'" in out
    code, out = run("weekly", "--transport", "carrier-pigeon://x")
    assert code == 2 and "unknown transport" in out
    code, out = run("resume", "999", "--transport", "memory:")
    assert code == 2 and "run 999 does not exist" in out
    code, out = run("weekly", "--on-unknown", "maybe")
    assert code == 2 and "--on-unknown 'maybe'" in out


def test_run_campaign_reports_progress_and_counts_from_the_database(sqlite_engine: Engine) -> None:
    from newsletter.config import Settings
    from newsletter.deliver.dispatch import Outcome
    from newsletter.pipeline import run_campaign

    seed_dispatch_world(sqlite_engine, subscribers=12)

    class Sink:
        def __init__(self) -> None:
            self.total = -1
            self.seen: list[Outcome] = []

        def start(self, total: int) -> None:
            self.total = total

        def __call__(self, outcome: Outcome) -> None:
            self.seen.append(outcome)

    sink = Sink()
    summary = run_campaign(
        sqlite_engine,
        campaign="weekly",
        now=DISPATCH_NOW,
        settings=Settings(),
        transport_url="memory:",
        shard_count=2,
        progress=sink,
    )
    assert sink.total == summary.result.sent == len(sink.seen) == summary.counts.by_status["sent"]
    assert summary.plan is not None and summary.plan["planned"] == sink.total
    assert summary.as_dict()["by_status"] == {"sent": sink.total}
