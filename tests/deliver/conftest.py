"""Fixtures for delivery tests: real SMTP servers in their own process, test messages, a cert.

``smtp_server``: a well-behaved server; ``flaky_smtp_server``: answers 421/451 at random and
drops connections (seeded); ``smtp_server_factory(**options)``: any other mix (see
``smtp_server.start_smtp_server``). Every server is stopped at teardown. ``make_messages(n)``
builds ``OutgoingMessage`` objects with the stdlib ``email`` package.

Another test folder can use the server without these fixtures::

    sys.path.insert(0, str(Path(__file__).parents[1] / "deliver"))
    from smtp_server import start_smtp_server
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path
from typing import Any

import pytest

from newsletter.deliver import OutgoingMessage

sys.path.insert(0, str(Path(__file__).parent))  # `import smtp_server` under any import mode
from dispatch_data import plan_dispatch_run, seed_dispatch_world
from smtp_server import (
    SmtpTestServer,
    make_self_signed_cert,
    start_smtp_server,
)

SENDER = "news@sender.test"


def build_message(key: int, *, recipient: str | None = None, body_size: int = 0) -> bytes:
    """Build a small multipart/alternative message with a stable Message-ID derived from key."""
    msg = EmailMessage()
    msg["From"] = f"Newsletter <{SENDER}>"
    msg["To"] = recipient or f"user{key}@example.test"
    msg["Subject"] = f"Your picks #{key}"
    msg["Message-ID"] = f"<run1.{key}@sender.test>"
    text = f"Hello {key}\n.a line starting with a dot\n" + "x" * body_size
    msg.set_content(text)
    msg.add_alternative(f"<p>Hello {key}</p>", subtype="html")
    return msg.as_bytes(policy=SMTP)


def make_outgoing(n: int, *, start: int = 0, body_size: int = 0) -> list[OutgoingMessage]:
    """Return ``n`` messages to ``user{i}@example.test`` keyed by ``i``."""
    out = []
    for key in range(start, start + n):
        rcpt = f"user{key}@example.test"
        data = build_message(key, recipient=rcpt, body_size=body_size)
        out.append(OutgoingMessage(key, SENDER, [rcpt], data))
    return out


@pytest.fixture
def make_messages() -> Callable[..., list[OutgoingMessage]]:
    """Factory fixture: ``make_messages(n, start=0, body_size=0)``."""
    return make_outgoing


@pytest.fixture
def smtp_server_factory(tmp_path: Path) -> Iterator[Callable[..., SmtpTestServer]]:
    """Start servers with any options; each stores into its own folder under tmp_path."""
    servers: list[SmtpTestServer] = []

    def start(**options: Any) -> SmtpTestServer:
        server = start_smtp_server(tmp_path / f"mail{len(servers)}", **options)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def smtp_server(smtp_server_factory: Callable[..., SmtpTestServer]) -> SmtpTestServer:
    """A well-behaved SMTP server on a free loopback port, in its own process."""
    return smtp_server_factory()


@pytest.fixture
def flaky_smtp_server(smtp_server_factory: Callable[..., SmtpTestServer]) -> SmtpTestServer:
    """A server that answers 421/451 to ~25% of commands and drops ~5% of connections."""
    return smtp_server_factory(flaky_rate=0.25, drop_rate=0.05, seed=1234)


@pytest.fixture(scope="session")
def tls_cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate and key for localhost and 127.0.0.1 (skips if none can be made)."""
    made = make_self_signed_cert(tmp_path_factory.mktemp("tls"))
    if made is None:
        pytest.skip("no way to make a test certificate: install `cryptography` or `openssl`")
    return made


# --------------------------------------------------------------------------- dispatch data


@pytest.fixture
def dispatch_world() -> Callable[..., None]:
    """Factory fixture: ``dispatch_world(engine, subscribers=30)`` seeds data and a campaign."""
    return seed_dispatch_world


@pytest.fixture
def plan_weekly() -> Callable[..., int]:
    """Factory fixture: ``plan_weekly(engine, scheduled_for=None, shard_count=1) -> run_id``."""
    return plan_dispatch_run
