"""SIGKILL a real `newsletter run` at each stage of a run, then `run resume`: every member of
the run is planned, every planned subscriber receives exactly one distinct message, and the run
is never marked delivered while a member has no message (issue 11, point 5).

The process is stopped dead at a chosen point by ``crash_at.py`` (planning right after the run
row exists; between two shards of the plan; while rendering; right after a recorded send) and
killed with SIGKILL; the SMTP server lives in its own process and keeps counting.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from dispatch_data import DISPATCH_NOW, seed_dispatch_world
from smtp_server import SmtpTestServer
from sqlalchemy import Engine, select

from newsletter.models import ArtifactKind, Message, Run, Subscriber
from newsletter.plan.runs import load_plan, plan_complete
from newsletter.store.artifacts import artifact_digest
from newsletter.tables import subscriber_table, table_of
from testsupport import STRONG_SECRET

HERE = Path(__file__).parent
MID = re.compile(r"<nl\.(\d+)\.")
NOW_ARG = DISPATCH_NOW.isoformat()
MEMBERS = 24
pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


def _env(database_url: str, tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env["NEWSLETTER_DATABASE_URL"] = database_url
    env["NEWSLETTER_CONFIG"] = str(tmp / "absent.toml")
    env["NEWSLETTER_SECRET_KEY"] = STRONG_SECRET  # `run` refuses the public default key
    return env


def _kill_at(stage: str, server: SmtpTestServer, env: dict[str, str], cwd: Path) -> None:
    """Start `newsletter run weekly` held at `stage`, wait until it stands there, SIGKILL it."""
    command = [sys.executable, str(HERE / "crash_at.py"), stage, "run", "weekly"]
    command += ["--now", NOW_ARG, "--transport", server.url, "--shards", "3", "--send-all"]
    process = subprocess.Popen(
        command, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        line = process.stdout.readline().decode()  # type: ignore[union-attr]
        assert line.strip() == f"HOLD {stage}", process.stderr.read().decode()  # type: ignore[union-attr]
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL


def _resume(run_id: int, server: SmtpTestServer, env: dict[str, str], cwd: Path) -> str:
    command = [sys.executable, "-m", "newsletter", "run", "resume", str(run_id), "--now", NOW_ARG]
    command += ["--transport", server.url, "--send-all"]
    done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, timeout=150)
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode()


def _state(engine: Engine) -> tuple[int, str, dict[int, tuple[str, str]]]:
    """The run's id and status, and message id -> (status, recipient)."""
    m, s, r = (table_of(t).c for t in (Message, Subscriber, Run))
    with engine.connect() as c:
        run_id, status = c.execute(select(r.id, r.status)).one()
        rows = c.execute(
            select(m.id, m.status, s.email)
            .join(subscriber_table, s.id == m.subscriber_id)
            .where(m.run_id == run_id)
        ).all()
    return int(run_id), str(status), {int(i): (str(st), str(e)) for i, st, e in rows}


def _received(server: SmtpTestServer) -> Counter[int]:
    out: Counter[int] = Counter()
    for mid, n in server.count_by_message_id().items():
        found = MID.match(mid or "")
        assert found, f"unexpected Message-ID {mid!r}"
        out[int(found.group(1))] += n
    return out


@pytest.mark.parametrize("stage", ["run-row", "shard", "render", "sent"])
def test_sigkill_at_each_stage_then_resume_sends_every_member_exactly_once(
    stage: str,
    tmp_path: Path,
    database_pair: Callable[[], tuple[Engine, str]],
    smtp_servers: Callable[..., SmtpTestServer],
) -> None:
    engine, url = database_pair()
    if engine.dialect.name == "postgresql" and stage in ("render", "sent"):
        pytest.skip("delivery stages: SQLite here, PostgreSQL in tests/deliver/test_dispatch_crash")
    seed_dispatch_world(engine, subscribers=MEMBERS)
    server, env = smtp_servers(), _env(url, tmp_path)

    _kill_at(stage, server, env, tmp_path)
    run_id, status, at_kill = _state(engine)
    assert status != "delivered"
    assert plan_complete(engine, run_id=run_id) is (stage in ("render", "sent"))
    if stage == "run-row":  # the run row and nothing else: no plan, no member, no message
        assert at_kill == {} and load_plan(engine, run_id=run_id) is None
    if stage == "shard":  # members and model stored, one shard of three planned
        plan = load_plan(engine, run_id=run_id)
        assert plan is not None and plan.members == MEMBERS and 0 < len(at_kill) < MEMBERS
        model = artifact_digest(engine, run_id=run_id, kind=ArtifactKind.model)
        assert model is not None
    window = {mid for mid, (st, _) in at_kill.items() if st == "sending"}
    sent_before = {mid for mid, (st, _) in at_kill.items() if st == "sent"}
    assert sent_before <= set(_received(server))

    out = _resume(run_id, server, env, tmp_path)
    _, status, final = _state(engine)
    if stage == "shard":  # the resumed plan used the model stored before the kill
        assert artifact_digest(engine, run_id=run_id, kind=ArtifactKind.model) == model
    assert status == "delivered" and len(final) == MEMBERS
    planned = {mid for mid, (st, _) in final.items() if st != "skipped"}
    assert {final[mid][0] for mid in planned} == {"sent"}
    received = _received(server)
    assert set(received) == planned  # every planned subscriber: one distinct Message-ID
    assert all(n == 1 for mid, n in received.items() if mid not in window)
    recipients = server.count_by_recipient()
    assert set(recipients) == {final[mid][1] for mid in planned}
    assert f"sent: {len(planned)}" in out
