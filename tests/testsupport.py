"""Helpers shared by test modules (import as `testsupport`; conftest modules can't be shared)."""

from __future__ import annotations

import email
import os
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from email import policy
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, make_url, text

from newsletter.db import make_engine

POSTGRES_URL = os.environ.get(
    "NEWSLETTER_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
# A key as strong as `newsletter.keys` asks for (secrets.token_urlsafe(32)), for tests that
# go through `newsletter run` / `newsletter serve`.
STRONG_SECRET = "Jm2x9QK4bq0tV7yR3eWcZp1sNfU8aHdLgO5iEkTj6rY"
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


READER_ROLE = "newsletter_reader"  # newsletter.store.readonly.READER_ROLE
TEST_LOGIN_ROLE = "newsletter_test_reader"


def ensure_role(connection: Connection, role: str, *, login: bool = False) -> None:
    """Create a (cluster-wide) role unless it exists; safe when tests race to create it."""
    option = "LOGIN" if login else "NOLOGIN"
    connection.execute(
        text(
            f"DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{role}') "
            f'THEN CREATE ROLE "{role}" {option} NOSUPERUSER; END IF; '
            "EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
        )
    )


def grant_read(connection: Connection, schema: str, role: str) -> None:
    """Let `role` read every table of `schema`, those there now and those created later."""
    connection.execute(text(f'GRANT USAGE ON SCHEMA "{schema}" TO "{role}"'))
    connection.execute(text(f'GRANT SELECT ON ALL TABLES IN SCHEMA "{schema}" TO "{role}"'))
    connection.execute(
        text(f'ALTER DEFAULT PRIVILEGES IN SCHEMA "{schema}" GRANT SELECT ON TABLES TO "{role}"')
    )


def fresh_postgres_engine() -> Iterator[Engine]:
    """An engine whose search_path is a new, empty schema; the schema is dropped afterwards.

    The read-only role ``newsletter_reader`` may read the schema's tables (as the README
    tells operators to set up), so user-written SQL runs under it and not as the superuser.
    """
    require_postgres()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = make_engine(POSTGRES_URL)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        ensure_role(connection, READER_ROLE)
        grant_read(connection, schema, READER_ROLE)
    engine = make_engine(POSTGRES_URL, connect_args={"options": f"-csearch_path={schema}"})
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@contextmanager
def postgres_source_schema() -> Iterator[tuple[str, str]]:
    """A new PostgreSQL schema as a sync source: (owner URL to seed it, read-only login URL).

    The read-only URL logs in as ``newsletter_test_reader``, a role that may only SELECT
    from the schema: how the README tells operators to connect sync sources.
    """
    require_postgres()
    schema = f"src_{uuid.uuid4().hex[:10]}"
    admin = make_engine(POSTGRES_URL)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        ensure_role(connection, TEST_LOGIN_ROLE, login=True)
        grant_read(connection, schema, TEST_LOGIN_ROLE)
    options = f"?options=-csearch_path%3D{schema}"
    owner = POSTGRES_URL + options
    reader = make_url(POSTGRES_URL).set(username=TEST_LOGIN_ROLE, password=None)
    try:
        yield owner, reader.render_as_string(hide_password=False) + options
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def with_csrf(client: Any, path: str, body: str) -> str:
    """`body` plus the anti-forgery value the preferences page at `path` carries."""
    import re

    page = client.get(path).text
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, f"no anti-forgery field on {path}"
    return f"{body}&csrf={found.group(1)}" if body else f"csrf={found.group(1)}"


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


def assert_valid_email(raw: bytes) -> None:
    """multipart/alternative, no broken image, no 'None' a reader could see."""
    parsed = email.message_from_bytes(raw, policy=policy.default)
    assert [p.get_content_type() for p in parsed.iter_parts()] == ["text/plain", "text/html"]
    plain = parsed.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = parsed.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert 'src="None"' not in html and 'src=""' not in html
    assert not re.search(r"\bNone\b", plain)
    visible = re.sub(r"<[^>]+>", " ", re.sub(r"(?s)<(style|head)\b.*?</\1>", " ", html))
    assert not re.search(r"\bNone\b", visible)
    assert "None" not in str(parsed["Subject"])
