"""The secret key must be strong outside the demo: `serve` and `run` refuse weak or public keys
with one line, before anything is planned, rendered or served."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from typer.testing import CliRunner

from newsletter import cli
from newsletter.config import DEFAULT_SECRET_KEY
from newsletter.keys import (
    DEMO_SECRET,
    MIN_SECRET_BITS,
    WeakSecretError,
    check_secret_key,
    estimated_bits,
)
from newsletter.models import Message, Run

STRONG = "gg_Gnk7a37vnivwv6GEBUkENowOgNTNGI0Aa-BFgZls"  # secrets.token_urlsafe(32)


@pytest.mark.parametrize(
    ("key", "needle"),
    [
        ("", "empty"),
        (" ", "empty"),
        ("\t\n", "empty"),
        ("a", "too weak"),
        ("a-real-secret-0123456789", "too weak"),
        ("correct horse battery staple", "too weak"),
        ("ab" * 40, "too weak"),
        ("x" * 200, "too weak"),
        (secrets.token_hex(16), "too weak"),  # 16 bytes is not 32
        (DEFAULT_SECRET_KEY, "shipped default"),
        (DEMO_SECRET, "demo key"),
    ],
)
def test_weak_or_public_keys_are_refused_with_the_fix(key: str, needle: str) -> None:
    with pytest.raises(WeakSecretError) as err:
        check_secret_key(key)
    message = str(err.value)
    assert needle in message and "NEWSLETTER_SECRET_KEY" in message and "\n" not in message


@pytest.mark.parametrize(
    "key", [STRONG, secrets.token_urlsafe(32), secrets.token_hex(32), secrets.token_hex(32).upper()]
)
def test_32_random_bytes_pass(key: str) -> None:
    assert estimated_bits(key) >= MIN_SECRET_BITS
    check_secret_key(key)


def test_the_demo_accepts_public_keys_but_never_a_blank_one() -> None:
    check_secret_key(DEFAULT_SECRET_KEY, demo=True)
    check_secret_key("a", demo=True)
    with pytest.raises(WeakSecretError, match="empty"):
        check_secret_key("  ", demo=True)


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in list(os.environ):
        if name.startswith("NEWSLETTER_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NEWSLETTER_DATABASE_URL", f"sqlite:///{tmp_path / 'keys.db'}")
    return tmp_path


@pytest.mark.parametrize("key", ["", " ", "a", DEMO_SECRET, DEFAULT_SECRET_KEY])
def test_serve_refuses_weak_keys_in_one_line(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, key: str
) -> None:
    started: list[object] = []
    monkeypatch.setattr("newsletter.api.app.run_server", lambda **kw: started.append(kw))
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", key)
    result = CliRunner().invoke(cli.app, ["serve"])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "NEWSLETTER_SECRET_KEY" in result.output
    assert started == []


@pytest.mark.parametrize("key", ["", "a", DEMO_SECRET])
def test_run_refuses_weak_keys_before_planning_anything(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, sqlite_engine: Engine, key: str
) -> None:
    monkeypatch.setenv("NEWSLETTER_DATABASE_URL", str(sqlite_engine.url))
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", key)
    result = CliRunner().invoke(cli.app, ["run", "weekly", "--transport", "memory:"])
    assert result.exit_code == 2, result.output
    assert "secret key" in result.output and "Traceback" not in result.output
    with sqlite_engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(Run)).scalar() == 0
        assert connection.execute(select(func.count()).select_from(Message)).scalar() == 0
