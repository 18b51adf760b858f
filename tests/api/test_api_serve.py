"""`newsletter serve`: refuses the default secret key unless --demo; serves /healthz for real."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from newsletter import cli
from newsletter.config import DEMO_SECRET_KEY
from testsupport import STRONG_SECRET


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working folder with no newsletter.toml and no NEWSLETTER_* variables."""
    for name in list(os.environ):
        if name.startswith("NEWSLETTER_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NEWSLETTER_DATABASE_URL", f"sqlite:///{tmp_path / 'serve.db'}")
    return tmp_path


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Record run_server calls instead of starting a server."""
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr("newsletter.api.app.run_server", lambda **kw: calls.append(kw))
    return calls


def test_serve_refuses_the_default_secret_key(workdir: Path, served: list) -> None:
    result = CliRunner().invoke(cli.app, ["serve"])
    assert result.exit_code == 2
    assert "NEWSLETTER_SECRET_KEY" in result.output and "--demo" in result.output
    assert "Traceback" not in result.output
    assert served == []


def test_serve_starts_with_a_real_key_or_in_demo_mode(
    workdir: Path, served: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = CliRunner().invoke(cli.app, ["serve", "--demo", "--port", "8123"])
    assert result.exit_code == 0, result.output
    assert "demo's public key" in result.output
    assert served[0]["settings"].secret_key == DEMO_SECRET_KEY
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", STRONG_SECRET)
    result = CliRunner().invoke(cli.app, ["serve", "--host", "0.0.0.0"])
    assert result.exit_code == 0, result.output
    assert [(c["host"], c["port"]) for c in served] == [("127.0.0.1", 8123), ("0.0.0.0", 8000)]
    assert served[1]["settings"].secret_key == STRONG_SECRET


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
def test_serve_demo_answers_healthz_in_a_real_process(workdir: Path) -> None:
    port = _free_port()
    command = [sys.executable, "-m", "newsletter", "serve", "--demo", "--port", str(port)]
    process = subprocess.Popen(
        command, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    output = process.stdout.read().decode() if process.stdout else ""
                    pytest.fail(f"server did not come up (exit {process.poll()}):\n{output}")
                time.sleep(0.2)
        assert (response.status_code, response.json()) == (200, {"status": "ok"})
        pixel = httpx.get(f"http://127.0.0.1:{port}/t/o/garbage.gif", timeout=5)
        assert (pixel.status_code, pixel.headers["content-type"]) == (200, "image/gif")
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def test_the_scheduler_stops_when_the_web_app_stops(
    workdir: Path, served: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    """serve's background scheduler must not outlive the server (its thread would go on
    submitting jobs while the process exits, and log tracebacks)."""
    from newsletter.cli import schedule

    started: list[Any] = []
    real = schedule.start_scheduler

    def recording(**kw: Any) -> Any:
        started.append(real(**kw))
        return started[-1]

    monkeypatch.setattr(schedule, "start_scheduler", recording)
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", STRONG_SECRET)
    result = CliRunner().invoke(cli.app, ["serve"])
    assert result.exit_code == 0, result.output
    assert len(served) == 1 and len(started) == 1
    assert started[0].running is False
