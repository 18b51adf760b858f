"""Real Celery workers for tests: `newsletter worker` subprocesses, bounded waits, cleanup.

    with start_workers(2, env=..., log_dir=tmp_path) as workers:
        ...                      # workers[0].process.pid is a real worker process
        workers[0].kill()        # SIGKILL, as a machine or an OOM killer would

Each worker runs ``--pool solo`` by default (the task runs in the worker process itself, so
one SIGKILL takes the worker, its broker connection and its shard at once); with
``pool="prefork"`` a task runs in a child process, and ``kill_child`` kills only that child
(Celery's "worker lost": the task is rejected back to the queue). ``start_workers``
waits (at most ``ready_timeout`` seconds) for every worker to log "ready", and stops every
worker it started on the way out: SIGTERM, then SIGKILL after a few seconds.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672//"
REDIS_URL = "redis://127.0.0.1:6379/0"
ENTRY = "from newsletter.cli import app; app()"


@dataclass
class WorkerProcess:
    """One `newsletter worker` subprocess and its log file."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def kill(self) -> None:
        """SIGKILL the worker (no warm shutdown, no acknowledgement)."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def kill_child(self) -> None:
        """SIGKILL the pool process running the task (the worker itself lives on)."""
        import psutil

        (child,) = psutil.Process(self.process.pid).children()
        child.send_signal(signal.SIGKILL)

    def ready(self) -> bool:
        return " ready." in self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=8)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def unique_queue() -> str:
    """A queue no other test (or engineer) shares."""
    return f"nl-test-{uuid.uuid4().hex[:10]}"


@contextlib.contextmanager
def start_workers(
    count: int,
    *,
    env: Mapping[str, str],
    log_dir: Path,
    ready_timeout: float = 90.0,
    pool: str = "solo",
) -> Iterator[list[WorkerProcess]]:
    """Start `count` workers with `env` added to this environment; stop them afterwards.

    ``pool="prefork"`` runs each task in a child process of the worker (one child each).
    """
    workers: list[WorkerProcess] = []
    full = {**os.environ, "PYTHONPATH": str(REPO), **env}
    try:
        for n in range(count):
            name = f"w{n}-{uuid.uuid4().hex[:6]}@test"
            log = log_dir / f"worker-{n}.log"
            with log.open("wb") as out:
                process = subprocess.Popen(
                    [sys.executable, "-c", ENTRY, "worker", "--pool", pool, "--name", name],
                    env=full,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    cwd=log_dir,
                )
            workers.append(WorkerProcess(name, process, log))
        deadline = time.monotonic() + ready_timeout
        while not all(w.ready() for w in workers):
            dead = [w for w in workers if w.process.poll() is not None]
            if dead or time.monotonic() > deadline:
                logs = "\n".join(w.log.read_text(errors="replace")[-2000:] for w in workers)
                raise RuntimeError(f"workers did not become ready:\n{logs}")
            time.sleep(0.2)
        yield workers
    finally:
        for worker in workers:
            worker.stop()


def wait_until(predicate: object, *, timeout: float, what: str, every: float = 0.1) -> None:
    """Poll `predicate()` until true; fail after `timeout` seconds naming `what`."""
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(every)
