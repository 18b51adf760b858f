"""Benchmark: a weekly digest end to end on PostgreSQL, in-process and on Celery workers.

Fit, plan, render and deliver one run of a digest to every subscriber of a synthetic world
(``newsletter.simulate.world``), delivered over SMTP to Postfix's ``smtp-sink`` (a C sink
that accepts and discards; ``apt-get install postfix``). Each mode starts from a freshly
built database (setup is not timed):

- ``in-process``: every shard in this process, one SMTP connection;
- ``celery``: the same tasks on ``--workers`` `newsletter worker` processes (``--pool solo``)
  over ``--broker`` (Redis or RabbitMQ), each opening its own connection to the sink.

Printed per stage: wall time, rate, peak memory (this process, and each worker's own high-water
mark, ``VmHWM`` in ``/proc/<pid>/status``, read before it is stopped), and the total. Not a
test; results go to benchmarks/README.md::

    python benchmarks/bench_digest.py --subscribers 20000 --modes in-process celery \
        --claim-batch 100 \
        --database-url postgresql+psycopg://postgres@127.0.0.1:5432/benchdigest
    # the issue's size (only on a quiet machine):
    python benchmarks/bench_digest.py --subscribers 1000000 --items 50000 \
        --interactions 20000000 --shards 16 --database-url ...

The PostgreSQL database must be a scratch one. The world is built once into
``<name>_template`` (its public schema dropped and recreated); each mode then starts from a
fresh copy of it (``DROP DATABASE <name>; CREATE DATABASE <name> TEMPLATE <name>_template``),
so both modes see the same data and the 20M-interaction setup is paid once.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Connection, make_url, text
from sqlalchemy.exc import OperationalError

from newsletter.config import Settings
from newsletter.db import make_engine, session_scope, upgrade
from newsletter.deliver.policy import DeliveryPolicy
from newsletter.models import Campaign
from newsletter.pipeline import create_run, deliver_run, plan_run
from newsletter.simulate.world import generate_world, world_now
from newsletter.store.frames import load_frames
from newsletter.tasks import InProcess

REPO = Path(__file__).resolve().parents[1]
SECRET = "bench-digest-secret-key-0123456789abcdef"


def worker_peak_mb(pid: int) -> float:
    """A live process's peak resident memory since its exec (0 when it cannot be read).

    Not ``RUSAGE_CHILDREN``: a child's ``ru_maxrss`` counts the parent's pages it held between
    fork and exec, so every child of a 12 GB parent "peaked" at 12 GB.
    """
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def peak_mb(who: int = resource.RUSAGE_SELF) -> float:
    return resource.getrusage(who).ru_maxrss / 1024


@contextmanager
def server_connection(url: str) -> Iterator[Connection]:
    """An autocommit connection to the server's ``postgres`` database (CREATE/DROP DATABASE)."""
    target = make_url(url).set(database="postgres").render_as_string(hide_password=False)
    server = make_engine(target)
    try:
        with server.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
            yield c
    finally:
        server.dispose()


def ensure_database(url: str) -> None:
    """Create the scratch database when the server does not have it yet (via ``postgres``)."""
    name = make_url(url).database
    try:
        with server_connection(url) as c:
            found = c.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name})
            if found.first() is None:
                c.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError as error:
        raise SystemExit(f"error: cannot reach PostgreSQL for {url}: {error.orig}") from None


def template_url(url: str) -> str:
    target = make_url(url)
    return target.set(database=f"{target.database}_template").render_as_string(hide_password=False)


def clone(url: str) -> None:
    """`url`'s database dropped and created again as a copy of its template (see build)."""
    name, source = make_url(url).database, make_url(template_url(url)).database
    with server_connection(url) as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        c.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{source}"'))
    engine = make_engine(url)
    upgrade(engine)  # a world an older version built gets this version's tables
    engine.dispose()


def build(url: str, n: int, items: int, interactions: int) -> None:
    """A scratch PostgreSQL database holding the world and a 'weekly' digest campaign."""
    ensure_database(url)
    engine = make_engine(url)
    with engine.begin() as c:
        c.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    upgrade(engine)
    now = world_now()
    world = generate_world(subscribers=n, items=items, interactions=interactions, now=now)
    load_frames(engine, frames=world.frames, now=now, origin="bench")
    with session_scope(engine) as s:
        s.add(Campaign(name="weekly", template_name="digest", created_at=now))
    engine.dispose()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_sink(port: int) -> subprocess.Popen[bytes]:
    """Postfix smtp-sink on `port`: accepts every message (PIPELINING), stores nothing."""
    sink = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
    process = subprocess.Popen([sink, "-u", "nobody", f"127.0.0.1:{port}", "256"])
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return process
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("smtp-sink did not start")


def start_workers(count: int, settings: Settings) -> list[subprocess.Popen[bytes]]:
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "NEWSLETTER_SECRET_KEY": SECRET,
        "NEWSLETTER_SMTP_URL": settings.smtp_url,
        "NEWSLETTER_BROKER_URL": settings.broker_url,
        "NEWSLETTER_CELERY_QUEUE": settings.celery_queue,
        "NEWSLETTER_CONFIG": "/nonexistent/newsletter.toml",
    }
    entry = "from newsletter.cli import app; app()"
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", entry, "worker", "--pool", "solo", "--loglevel", "WARNING"],
            env=env,
        )
        for _ in range(count)
    ]
    time.sleep(5)  # connect to the broker (tasks sent earlier simply wait in the queue)
    return workers


def one_mode(mode: str, args: argparse.Namespace, url: str) -> dict[str, float]:
    port = free_port()
    sink = start_sink(port)
    queue = f"bench-{uuid.uuid4().hex[:8]}"
    settings = Settings(
        secret_key=SECRET,
        smtp_url=f"smtp://127.0.0.1:{port}?batch={args.claim_batch}",
        broker_url=args.broker,
        celery_queue=queue,
    )
    engine = make_engine(url)
    workers: list[subprocess.Popen[bytes]] = []
    if mode == "celery":
        from newsletter.distributed import CeleryExecutor

        workers = start_workers(args.workers, settings)
        executor: object = CeleryExecutor(settings)
    else:
        executor = InProcess()
    now = world_now()
    times: dict[str, float] = {}
    try:
        t0 = time.perf_counter()
        plan = create_run(
            engine, campaign="weekly", now=now, settings=settings, shard_count=args.shards
        )
        times["fit"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        planned = plan_run(
            engine, run_id=plan.run_id, now=now, executor=executor, settings=settings
        )  # type: ignore[arg-type]
        times["plan"] = time.perf_counter() - t0
        t0, c0 = time.perf_counter(), time.process_time()
        summary = deliver_run(
            engine,
            run_id=plan.run_id,
            now=now,
            settings=settings,
            policy=DeliveryPolicy(honour_send_time=False),
            executor=executor,  # type: ignore[arg-type]
        )
        times["render+deliver"] = time.perf_counter() - t0
        times["deliver_cpu"] = time.process_time() - c0  # this process only (in-process mode)
    finally:
        peaks = [worker_peak_mb(w.pid) for w in workers]
        times["worker_peak"] = max(peaks, default=0.0)
        for w in workers:
            w.terminate()
        for w in workers:
            w.wait(timeout=60)
        sink.terminate()
        sink.wait(timeout=10)
    times["planned"] = float(planned.stats["planned"])
    times["sent"] = float(summary.counts.by_status.get("sent", 0))
    times["total"] = times["fit"] + times["plan"] + times["render+deliver"]
    return times


def report(mode: str, times: dict[str, float], workers: int) -> None:
    sent, planned = times["sent"], times["planned"]
    print(f"== {mode}" + (f" ({workers} workers)" if mode == "celery" else ""))
    print(f"  fit (prepare: segment, matrices, fit, store model): {times['fit']:.1f} s")
    print(f"  plan: {times['plan']:.1f} s, {planned / times['plan']:,.0f} messages/s")
    print(
        f"  render + deliver (one interleaved pass): {times['render+deliver']:.1f} s, "
        f"{sent / times['render+deliver']:,.0f} messages/s ({sent:,.0f} sent)"
    )
    if mode == "in-process":
        cpu = times["deliver_cpu"]
        print(
            f"  render + deliver CPU of this process: {cpu:.1f} s, "
            f"{sent / max(cpu, 1e-9):,.0f} messages per CPU-second"
        )
    print(f"  total: {times['total']:.1f} s")
    workers_peak = f", largest worker {times['worker_peak']:.0f} MiB" if mode == "celery" else ""
    print(f"  peak memory: this process {peak_mb():.0f} MiB{workers_peak}")
    print(f"  load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=1_000_000)
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--interactions", type=int, default=20_000_000)
    parser.add_argument("--shards", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--claim-batch",
        type=int,
        default=100,
        help="messages claimed and recorded per transaction (smtp://...?batch=N; 1 = per message)",
    )
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/0")
    parser.add_argument(
        "--modes", nargs="*", default=["in-process", "celery"], help="none: only build the world"
    )
    parser.add_argument(
        "--reuse-world",
        action="store_true",
        help="skip the build: start each mode from the world an earlier run left in the template",
    )
    parser.add_argument(
        "--database-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/benchdigest"
    )
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    t0 = time.perf_counter()
    if args.reuse_world:
        print(f"setup: reusing the world in {make_url(template_url(args.database_url)).database}")
    else:
        build(template_url(args.database_url), args.subscribers, args.items, args.interactions)
        print(f"setup: world built (not timed): {time.perf_counter() - t0:.1f} s", flush=True)
    for mode in args.modes:
        t0 = time.perf_counter()
        clone(args.database_url)
        print(f"setup for {mode}: fresh copy (not timed): {time.perf_counter() - t0:.1f} s")
        report(mode, one_mode(mode, args, args.database_url), args.workers)


if __name__ == "__main__":
    main()
