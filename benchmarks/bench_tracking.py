"""Tracking throughput: click redirects and pixels, mixed, against rows stored; events API rows/s.

    apt-get install wrk
    python benchmarks/bench_tracking.py --database postgres --duration 20 --connections 32
    python benchmarks/bench_tracking.py --database postgres --sigterm-after 10   # SIGTERM mid-load

Builds 2,000 (--messages) sent messages (8 slots each), starts the tracking app in its own
process (uvicorn, one worker, access log off, `newsletter serve`'s buffer), and runs wrk on
loopback with a Lua script cycling through a signed click and pixel URL per message.
The server is then stopped with SIGTERM (or during the load with --sigterm-after) and the
event rows are counted against the requests wrk saw answered: lost = answered - stored.
Then it times POST /api/events with 1,000-row batches. Bounded: wrk runs --duration seconds.
It prints the server's CPU per request answered (the figure that carries over to an idle
machine); `--in-app N` times N requests inside the app alone (raw ASGI, no server, no writes).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy import Engine, func, insert, select, text

from newsletter import tokens
from newsletter.db import make_engine, upgrade
from newsletter.store.apikeys import create_key
from newsletter.tables import (
    campaign_table,
    event_table,
    interaction_table,
    item_table,
    message_table,
    run_table,
    slot_table,
    subscriber_table,
)

POSTGRES_URL = os.environ.get(
    "NEWSLETTER_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
SECRET = "bench-tracking-secret-0123456789"
SENT = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
MESSAGES, SLOTS = 2000, 8
SERVER = f"""
import os, sys, uvicorn
from newsletter.api.app import create_app
from newsletter.runtime import tune_gc
from newsletter.config import Settings
from newsletter.db import make_engine
url, port = sys.argv[1], int(sys.argv[2])
settings = Settings(secret_key={SECRET!r}, database_url=url)
app = create_app(settings=settings, engine=make_engine(url), buffered=True)
if os.environ.get("BENCH_DEFAULT_GC") != "1":
    tune_gc(freeze=True)  # as newsletter serve does (run_server)
uvicorn.run(app, host="127.0.0.1", port=port, access_log=False, log_level="warning")
"""


def build(engine: Engine, messages: int = MESSAGES) -> list[str]:
    """`messages` sent messages with 8 slots; returns 2 tracking paths each (a click, a pixel)."""
    t = SENT - timedelta(days=1)
    with engine.begin() as c:
        c.execute(
            insert(campaign_table),
            [
                {
                    "name": "bench",
                    "template_name": "digest",
                    "segment_name": "everyone",
                    "config": {},
                    "kind": "digest",
                    "active": True,
                    "created_at": t,
                }
            ],
        )  # type: ignore[attr-defined]
        c.execute(
            insert(run_table),
            [
                {
                    "campaign_id": 1,
                    "scheduled_for": SENT,
                    "status": "sent",
                    "stats": {},
                    "created_at": t,
                }
            ],
        )  # type: ignore[attr-defined]
        people = [
            {
                "email": f"r{n}@example.com",
                "status": "active",
                "timezone": "UTC",
                "frequency": "weekly",
                "topics": [],
                "attributes": {},
                "created_at": t,
                "updated_at": t,
            }
            for n in range(messages)
        ]
        c.execute(insert(subscriber_table), people)
        items = [
            {
                "external_key": f"i{n}",
                "title": f"Item {n}",
                "url": f"https://example.com/{n}",
                "summary": "",
                "topics": [],
                "attributes": {},
                "active": True,
                "updated_at": t,
            }
            for n in range(200)
        ]
        c.execute(insert(item_table), items)
        sent = [
            {
                "run_id": 1,
                "subscriber_id": n + 1,
                "arm": "personalized",
                "status": "sent",
                "shard": 0,
                "attempts": 1,
                "planned_for": SENT,
                "sent_at": SENT,
                "updated_at": SENT,
            }
            for n in range(messages)
        ]
        c.execute(insert(message_table), sent)
        slots = [
            {
                "message_id": m + 1,
                "position": p,
                "section": "top",
                "item_id": (m + p) % 200 + 1,
                "source": "popular",
                "score": 1.0,
                "propensity": 1.0,
                "reason_kind": "popular",
                "reason_text": "Popular",
            }
            for m in range(messages)
            for p in range(SLOTS)
        ]
        c.execute(insert(slot_table), slots)
    rng = random.Random(6)
    paths = []
    for m in range(1, messages + 1):
        slot = rng.randrange(SLOTS)
        url = f"https://example.com/{(m - 1 + slot) % 200}"
        paths.append(
            f"/t/c/{tokens.sign_click(secret_key=SECRET, message_id=m, slot=slot, url=url)}"
        )
        paths.append(f"/t/o/{tokens.sign_open(secret_key=SECRET, message_id=m)}.gif")
    rng.shuffle(paths)
    return paths


def lua(paths: list[str], folder: Path) -> Path:
    script = folder / "paths.lua"
    listed = ",\n".join(f'"{p}"' for p in paths)
    script.write_text(
        "local paths = {\n" + listed + "\n}\nlocal n = 0\n"
        "request = function()\n  n = n % #paths + 1\n"
        '  return wrk.format("GET", paths[n], {["User-Agent"] = "Mozilla/5.0 (X11; Linux x86_64) '
        'AppleWebKit/537.36 Chrome/131.0 Safari/537.36"})\nend\n'
    )
    return script


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(url: str, port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen([sys.executable, "-c", SERVER, url, str(port)])
    for _ in range(300):
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return process
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit("the server did not start")


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident memory so far (VmHWM, Linux /proc), in MB; 0 once gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    kb = next((line.split()[1] for line in status.splitlines() if line.startswith("VmHWM")), "0")
    return int(kb) / 1024


def cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) a running process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stop_server(process: subprocess.Popen[bytes], *, signal_first: bool = True) -> float:
    """SIGTERM the server (unless already sent), wait for it to exit (at most 120 s) and
    return the CPU seconds (user + system) it used over its whole life."""
    if signal_first:
        process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        pid, _, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            process.returncode = 0
            return float(usage.ru_utime + usage.ru_stime)
        time.sleep(0.05)
    process.kill()
    raise SystemExit("the server did not stop within 120 s of SIGTERM")


def parse_wrk(output: str) -> dict[str, float]:
    """Requests answered, requests/s, p50/p99 latency (ms) and errors from wrk's report."""

    def ms(label: str) -> float:
        found = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s)\s*$", output, re.M)
        if not found:
            return float("nan")
        value, unit = float(found.group(1)), found.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    total = re.search(r"(\d+) requests in", output)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    return {
        "answered": float(total.group(1)) if total else 0.0,
        "rps": float(rate.group(1)) if rate else 0.0,
        "p50_ms": ms("50"),
        "p99_ms": ms("99"),
        "bad": float(bad.group(1)) if bad else 0.0,
        "socket_errors": float(sum(int(g) for g in errors.groups())) if errors else 0.0,
    }


def events_api(url: str, engine: Engine, batches: int) -> float:
    """Rows per second through POST /api/events (1,000-row batches, one connection)."""
    key = create_key(
        engine, name=f"bench-{uuid.uuid4().hex[:6]}", scope="events", rate_limit=100_000, now=SENT
    )[1]
    port = free_port()
    server = start_server(url, port)
    rows = [
        {
            "subscriber_key": f"s{n % 500}",
            "item_key": f"i{n % 200}",
            "kind": "view",
            "occurred_at": (SENT + timedelta(seconds=n)).isoformat(),
        }
        for n in range(batches * 1000)
    ]
    with engine.begin() as c:
        c.execute(
            text("UPDATE subscriber SET external_key = 's' || CAST(id - 1 AS TEXT) WHERE id <= 500")
        )
    try:
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}",
            timeout=60,
            headers={"Authorization": f"Bearer {key}"},
        ) as client:
            start = time.perf_counter()
            for b in range(batches):
                response = client.post(
                    "/api/events", json={"events": rows[b * 1000 : (b + 1) * 1000]}
                )
                assert response.status_code == 200, response.text[:300]
            seconds = time.perf_counter() - start
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
    with engine.connect() as c:
        stored = c.execute(select(func.count()).select_from(interaction_table)).scalar_one()
    assert stored == batches * 1000, stored
    return batches * 1000 / seconds


def in_app(requests: int) -> float:
    """CPU ms per click/pixel request in the buffered app alone (raw ASGI calls, never flushed)."""
    from newsletter.api.app import create_app
    from newsletter.config import Settings

    url = "sqlite:///:memory:"
    settings = Settings(secret_key=SECRET, database_url=url, track_flush_ms=10**9)
    app = create_app(settings=settings, engine=make_engine(url), buffered=True)
    app.state.tracking.buffer.max_rows = app.state.tracking.buffer.flush_rows = 10**9
    paths = [
        f"/t/c/{tokens.sign_click(secret_key=SECRET, message_id=m, slot=2, url=f'https://example.com/{m}')}"
        if m % 2
        else f"/t/o/{tokens.sign_open(secret_key=SECRET, message_id=m)}.gif"
        for m in range(1, 1001)
    ]
    agent = (b"user-agent", b"Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0 Safari/537.36")

    async def call(path: str) -> None:
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1"}
        scope |= {"method": "GET", "scheme": "http", "path": path, "raw_path": path.encode()}
        scope |= {"query_string": b"", "root_path": "", "headers": [(b"host", b"x"), agent]}
        scope |= {"client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 80), "state": {}}
        status: list[int] = []

        async def receive() -> dict[str, object]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, object]) -> None:
            if message["type"] == "http.response.start":
                status.append(int(message["status"]))  # type: ignore[call-overload]

        await app(scope, receive, send)
        assert status[0] in (200, 302), (path, status)

    async def drive() -> float:
        for n in range(200):  # warm-up
            await call(paths[n % len(paths)])
        start = time.process_time()
        for n in range(requests):
            await call(paths[n % len(paths)])
        return time.process_time() - start

    return asyncio.run(drive()) / requests * 1000


def run(url: str, engine: Engine, args: argparse.Namespace) -> None:
    upgrade(engine)
    with tempfile.TemporaryDirectory() as folder:
        script = lua(build(engine, args.messages), Path(folder))
        port = free_port()
        server = start_server(url, port)
        command = [
            "wrk",
            "-t2",
            f"-c{args.connections}",
            f"-d{args.duration}s",
            "--latency",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}",
        ]
        started_cpu = cpu_seconds(server.pid)
        load = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        if args.sigterm_after:
            time.sleep(args.sigterm_after)
            server.send_signal(signal.SIGTERM)
        output, _ = load.communicate()
        loaded_cpu = cpu_seconds(server.pid) - started_cpu if not args.sigterm_after else 0.0
        peak_rss = peak_rss_mb(server.pid)
        server_cpu = stop_server(server, signal_first=not args.sigterm_after) - started_cpu
    print(output)
    result = parse_wrk(output)
    with engine.connect() as c:
        stored = c.execute(select(func.count()).select_from(event_table)).scalar_one()
    answered = int(result["answered"] - result["bad"])
    rate, p50, p99 = result["rps"], result["p50_ms"], result["p99_ms"]
    errors = int(result["socket_errors"])
    print(f"requests/s {rate:.0f}  p50 {p50:.1f} ms  p99 {p99:.1f} ms  answered {answered}")
    print(f"stored {stored}  lost {answered - stored}  socket errors {errors}")
    per_request, flush = server_cpu / max(answered, 1) * 1000, server_cpu - loaded_cpu
    print(f"server CPU {server_cpu:.1f} s ({flush:.1f} s of it after SIGTERM, the last flush)")
    print(f"server CPU per request answered: {per_request:.3f} ms")
    print(f"server peak RSS {peak_rss:.0f} MB")
    if args.events_batches:
        print(f"events API: {events_api(url, engine, args.events_batches):.0f} rows/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="postgres")
    parser.add_argument("--duration", type=int, default=20)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--sigterm-after", type=float, default=0.0)
    parser.add_argument("--messages", type=int, default=MESSAGES, help="messages the URLs cycle")
    parser.add_argument("--events-batches", type=int, default=20)
    parser.add_argument(
        "--in-app", type=int, default=0, help="only time N requests inside the app (CPU ms each)"
    )
    args = parser.parse_args()
    if args.in_app:
        print(f"in-app CPU per request: {in_app(args.in_app):.3f} ms")
        return
    if args.database == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            url = f"sqlite:///{folder}/bench.db"
            run(url, make_engine(url), args)
        return
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    admin = make_engine(POSTGRES_URL)
    with admin.begin() as c:
        c.execute(text(f"CREATE SCHEMA {schema}"))
    url = f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    try:
        run(url, make_engine(url), args)
    finally:
        with admin.begin() as c:
            c.execute(text(f"DROP SCHEMA {schema} CASCADE"))


if __name__ == "__main__":
    main()
