"""SIGKILL the sending process mid-run, resume it, and count what the SMTP server received.

The server runs in its own process and outlives the sender. ``delay`` slows each DATA down
so the kill lands mid-run with one message (or two: pipelining takes the next envelope
early) in ``sending``. What the test asserts is exactly what each crash-window policy promises:

- resend (at-least-once): every planned subscriber received exactly one *distinct*
  Message-ID; raw copies beyond the first exist only for messages that were ``sending`` at
  the kill, at most one per such message; every message ends ``sent``.
- fail (at-most-once): no Message-ID arrives twice; the messages that were ``sending`` at the
  kill are exactly those marked ``failed``/``unknown_after_crash``; every other planned
  subscriber received exactly one message.
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
from dispatch_data import DISPATCH_NOW, plan_dispatch_run, seed_dispatch_world
from smtp_server import SmtpTestServer
from sqlalchemy import Engine, select, text

from newsletter.db import make_engine, upgrade
from newsletter.tables import message_table, subscriber_table
from testsupport import POSTGRES_URL, STRONG_SECRET

MID = re.compile(r"<nl\.(\d+)\.")
NOW_ARG = DISPATCH_NOW.isoformat()
pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]


def _env(database_url: str, tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env["NEWSLETTER_DATABASE_URL"] = database_url
    env["NEWSLETTER_CONFIG"] = str(tmp / "absent.toml")
    env["NEWSLETTER_SECRET_KEY"] = STRONG_SECRET
    return env


def _cli(*args: str, env: dict[str, str], cwd: Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "newsletter", "run", *args, "--send-all"]
    return subprocess.Popen(
        command, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def _by_status(engine: Engine, run_id: int) -> dict[int, tuple[str, str | None, str]]:
    m, s = message_table.c, subscriber_table.c
    with engine.connect() as c:
        rows = c.execute(
            select(m.id, m.status, m.reason, s.email)
            .join(subscriber_table, s.id == m.subscriber_id)
            .where(m.run_id == run_id)  # type: ignore[attr-defined]
        ).all()
    return {int(i): (str(st), r, str(e)) for i, st, r, e in rows}


def _received(server: SmtpTestServer) -> Counter[int]:
    out: Counter[int] = Counter()
    for mid, n in server.count_by_message_id().items():
        found = MID.match(mid or "")
        assert found, f"unexpected Message-ID {mid!r}"
        out[int(found.group(1))] += n
    return out


def _kill_mid_run(server: SmtpTestServer, env: dict[str, str], cwd: Path, planned: int) -> None:
    """Start `newsletter run weekly`, SIGKILL it once the server holds some messages."""
    process = _cli("weekly", "--now", NOW_ARG, "--transport", server.url, env=env, cwd=cwd)
    try:
        got = server.wait_for(5, timeout=60)
        assert got >= 5 and process.poll() is None, (
            f"run ended or stalled before the kill ({got} received): "
            f"{process.stderr.read().decode() if process.poll() is not None else ''}"  # type: ignore[union-attr]
        )
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    assert len(server.received()) < planned, "the kill should land before the run's end"


def _resume(
    run_id: int, server: SmtpTestServer, env: dict[str, str], cwd: Path, policy: str
) -> str:
    process = _cli(
        "resume", str(run_id), "--transport", server.url, "--on-unknown", policy, env=env, cwd=cwd
    )
    out, err = process.communicate(timeout=90)
    assert process.returncode == 0, err.decode()
    return out.decode()


def _database(db: str, tmp_path: Path, request: pytest.FixtureRequest) -> tuple[Engine, str]:
    """An engine and the URL the CLI subprocesses use for the same database."""
    if db == "postgres":
        engine = request.getfixturevalue("pg_engine")
        with engine.connect() as c:
            schema = c.execute(text("select current_schema()")).scalar_one()
        return engine, f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    url = f"sqlite:///{tmp_path / 'crash.db'}"
    engine = make_engine(url)
    upgrade(engine)
    request.addfinalizer(engine.dispose)
    return engine, url


@pytest.mark.parametrize(
    ("db", "policy"),
    [
        ("sqlite", "resend"),
        ("sqlite", "fail"),
        pytest.param("postgres", "resend", marks=pytest.mark.postgres),
    ],
)
def test_sigkill_mid_run_then_resume(
    db: str,
    policy: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    smtp_server_factory: Callable[..., SmtpTestServer],
) -> None:
    engine, url = _database(db, tmp_path, request)
    seed_dispatch_world(engine, subscribers=24)
    run_id = plan_dispatch_run(engine)  # the CLI's own plan of this run then adds nothing
    todo = {mid: row[2] for mid, row in _by_status(engine, run_id).items() if row[0] == "planned"}
    server = smtp_server_factory(delay=0.06)
    env = _env(url, tmp_path)

    _kill_mid_run(server, env, tmp_path, len(todo))
    at_kill = _by_status(engine, run_id)
    window = {mid for mid, row in at_kill.items() if row[0] == "sending"}
    sent_before = {mid for mid, row in at_kill.items() if row[0] == "sent"}
    assert 1 <= len(window) <= 2  # one connection: the message in DATA and the next envelope
    assert sent_before <= set(_received(server))

    out = _resume(run_id, server, env, tmp_path, policy)
    received, final = _received(server), _by_status(engine, run_id)
    assert set(received) <= set(todo)
    if policy == "resend":
        assert set(received) == set(todo)  # every planned subscriber: one distinct Message-ID
        copies = {mid: n for mid, n in received.items() if n > 1}
        assert set(copies) <= window and all(n == 2 for n in copies.values())
        assert {final[mid][0] for mid in todo} == {"sent"}
        assert f"sent: {len(todo)}" in out
    else:
        assert set(received.values()) == {1}  # no address ever got two copies
        failed = {mid for mid in todo if final[mid][:2] == ("failed", "unknown_after_crash")}
        assert failed == window
        assert {final[mid][0] for mid in set(todo) - window} == {"sent"}
        assert set(received) - window == set(todo) - window  # everyone else: exactly one
        assert f"failed unknown_after_crash: {len(window)}" in out
    recipients = server.count_by_recipient()
    assert set(recipients) <= set(todo.values())
