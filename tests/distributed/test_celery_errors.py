"""Clear one-line errors when the broker is not there (no traceback, the fix named)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from newsletter.cli import app
from newsletter.config import Settings
from newsletter.distributed import CeleryError, CeleryExecutor
from newsletter.tasks import PlanShard, Worker, executor_named

pytestmark = pytest.mark.timeout(120)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nothing listens once the socket is closed


def test_executor_names_the_unreachable_broker() -> None:
    url = f"redis://127.0.0.1:{_closed_port()}/0"
    settings = Settings(broker_url=url, celery_queue="nl-test-nobody")
    executor = executor_named("celery", workers=1, settings=settings)
    assert isinstance(executor, CeleryExecutor) and not executor.in_process
    with pytest.raises(CeleryError, match=r"cannot reach the broker .*NEWSLETTER_BROKER_URL"):
        executor.run([PlanShard("sqlite://", 1, 0)], worker=Worker(settings=settings))


def test_settings_choose_the_executor() -> None:
    assert executor_named(None, workers=1, settings=Settings()).in_process
    assert not executor_named(None, workers=3, settings=Settings()).in_process  # a pool
    assert isinstance(
        executor_named(None, workers=1, settings=Settings(executor="celery")), CeleryExecutor
    )


def test_worker_command_refuses_an_unreachable_broker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NEWSLETTER_CONFIG", str(tmp_path / "absent.toml"))
    monkeypatch.setenv("NEWSLETTER_BROKER_URL", f"redis://127.0.0.1:{_closed_port()}/0")
    result = CliRunner().invoke(app, ["worker"])
    assert result.exit_code == 2, result.output
    assert "cannot reach the broker 'redis://127.0.0.1:" in result.output
    assert "Traceback" not in result.output
    bad = CliRunner().invoke(app, ["worker", "--pool", "gevent"])
    assert bad.exit_code == 2 and "--pool 'gevent': use one of prefork, solo, threads" in bad.output
