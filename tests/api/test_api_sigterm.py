"""SIGTERM during load loses no event whose request was answered (`newsletter serve`, buffered).

A real server process on loopback; a bounded load (at most 600 requests, one connection) of
clicks and pixels; SIGTERM once 150 were answered. The flush interval is 5 s, so at SIGTERM
the answered events are still in the buffer: only the shutdown flush can save them.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from api_world import SECRET, build_world, events

from newsletter import tokens
from newsletter.db import make_engine, upgrade

CHROME = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/131.0 Safari/537.36"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_up(base: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(f"{base}/healthz", timeout=2)
            return
        except httpx.TransportError:
            if process.poll() is not None or time.monotonic() > deadline:
                out = process.stdout.read().decode() if process.stdout else ""
                pytest.fail(f"server did not come up (exit {process.poll()}):\n{out}")
            time.sleep(0.2)


@pytest.mark.slow
def test_sigterm_mid_load_loses_no_answered_event(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'serve.db'}"
    engine = make_engine(url)
    upgrade(engine)
    world = build_world(engine)
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env |= {
        "NEWSLETTER_DATABASE_URL": url,
        "NEWSLETTER_SECRET_KEY": SECRET,
        "NEWSLETTER_TRACK_FLUSH_MS": "5000",
        "NEWSLETTER_TRACK_FLUSH_ROWS": "100000",
    }
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "newsletter", "serve", "--port", str(port)]
    process = subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    click = tokens.sign_click(
        secret_key=SECRET, message_id=world.message_id, slot=0, url="https://example.com/a"
    )
    pixel = tokens.sign_open(secret_key=SECRET, message_id=world.message_id)
    paths = [f"/t/c/{click}", f"/t/o/{pixel}.gif"]
    answered = 0
    try:
        _wait_up(base, process)
        with httpx.Client(base_url=base, timeout=10, headers={"user-agent": CHROME}) as client:
            for n in range(600):
                if answered == 150:
                    process.send_signal(signal.SIGTERM)
                try:
                    response = client.get(paths[n % 2], follow_redirects=False)
                except httpx.TransportError:
                    break  # the server stopped accepting
                if response.status_code in (200, 302):
                    answered += 1
        # uvicorn shuts down gracefully, then re-raises SIGTERM: exit status 0 or -SIGTERM
        assert process.wait(timeout=60) in (0, -signal.SIGTERM)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
    stored = events(engine)
    assert answered >= 150
    assert len(stored) == answered, process.stdout.read().decode() if process.stdout else ""
    assert {e.kind for e in stored} == {"click", "open"}
