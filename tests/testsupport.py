"""Helpers shared by test modules (import as `testsupport`; conftest modules can't be shared)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from newsletter.db import make_engine

POSTGRES_URL = os.environ.get(
    "NEWSLETTER_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
REPO_ROOT = Path(__file__).resolve().parents[1]


def movielens_dir() -> Path:
    """The shared MovieLens folder (override with NEWSLETTER_MOVIELENS_DIR)."""
    override = os.environ.get("NEWSLETTER_MOVIELENS_DIR")
    if override:
        return Path(override)
    return REPO_ROOT.parent / "shared" / "data" / "movielens-latest-small"


def _postgres_available() -> str | None:
    """None when the server answers, else the reason it does not."""
    try:
        probe = make_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
        with probe.connect() as connection:
            connection.execute(text("select 1"))
        probe.dispose()
    except Exception as exc:  # any driver error means unreachable
        return f"{type(exc).__name__}: {exc}".splitlines()[0]
    return None


_PG_STATE: dict[str, str | None] = {}


def require_postgres() -> None:
    """Skip (or fail under CI) when PostgreSQL is unreachable."""
    if "reason" not in _PG_STATE:
        _PG_STATE["reason"] = _postgres_available()
    reason = _PG_STATE["reason"]
    if reason is None:
        return
    if IN_CI:
        pytest.fail(f"PostgreSQL is required under CI but unreachable at {POSTGRES_URL}: {reason}")
    pytest.skip(f"PostgreSQL unreachable at {POSTGRES_URL}: {reason}")


def fresh_postgres_engine() -> Iterator[Engine]:
    """An engine whose search_path is a new, empty schema; the schema is dropped afterwards."""
    require_postgres()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = make_engine(POSTGRES_URL)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine = make_engine(POSTGRES_URL, connect_args={"options": f"-csearch_path={schema}"})
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serving(args: list[str], *, cwd: Path, env: dict[str, str], port: int) -> Iterator[str]:
    """Run `python -m newsletter serve ... --port PORT` until /healthz answers; yield its URL."""
    import subprocess
    import sys
    import time

    import httpx

    command = [sys.executable, "-m", "newsletter", "serve", *args, "--port", str(port)]
    process = subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{base}/healthz", timeout=2)
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    output = process.stdout.read().decode() if process.stdout else ""
                    pytest.fail(f"server did not come up (exit {process.poll()}):\n{output}")
                time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
