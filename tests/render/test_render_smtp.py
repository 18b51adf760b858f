"""A real SMTP server (aiosmtpd, in its own process, loopback only) accepts a rendered message."""

from __future__ import annotations

import email
import smtplib
import socket
import subprocess
import sys
import time
from email import policy
from pathlib import Path

import pytest

SERVER = r"""
import sys, time, uuid
from pathlib import Path
from aiosmtpd.controller import Controller

out = Path(sys.argv[1]); port = int(sys.argv[2])

class Store:
    async def handle_DATA(self, server, session, envelope):
        name = out / f"{uuid.uuid4().hex}.eml"
        tmp = name.with_suffix(".tmp")
        tmp.write_bytes(envelope.original_content or envelope.content)
        tmp.rename(name)
        return "250 stored"

controller = Controller(Store(), hostname="127.0.0.1", port=port)
controller.start()
(out / "ready").write_text("ok")
deadline = time.monotonic() + 120
while time.monotonic() < deadline and not (out / "stop").exists():
    time.sleep(0.05)
controller.stop()
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def smtp_server(tmp_path: Path):
    """Start aiosmtpd in a subprocess; yield (port, inbox); stop it afterwards."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    port = _free_port()
    process = subprocess.Popen([sys.executable, "-c", SERVER, str(inbox), str(port)])
    try:
        for _ in range(200):
            if (inbox / "ready").exists() or process.poll() is not None:
                break
            time.sleep(0.05)
        if not (inbox / "ready").exists():
            pytest.fail("aiosmtpd test server did not start")
        yield port, inbox
    finally:
        (inbox / "stop").write_text("stop")
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@pytest.mark.slow
def test_real_smtp_server_accepts_and_stores_the_message_intact(
    smtp_server, rendered_digest
) -> None:
    port, inbox = smtp_server
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        refused = client.sendmail(
            "weekly@news.example.com", [rendered_digest.recipient], rendered_digest.bytes
        )
    assert refused == {}
    stored = [p for p in inbox.glob("*.eml")]
    assert len(stored) == 1
    data = stored[0].read_bytes()
    assert data.rstrip(b"\r\n") == rendered_digest.bytes.rstrip(b"\r\n")
    message = email.message_from_bytes(data, policy=policy.default)
    assert message["Message-ID"] == rendered_digest.message_id_header
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
    assert all(not part.defects for part in message.walk())
