"""Benchmark: plan a weekly digest for N subscribers (segment, cadence, arms, slots, persist).

Builds a synthetic world (newsletter.simulate.world) in a fresh database, adds suppressions
and last week's messages so cadence has work to do, then times each stage of a run's plan
through ``newsletter.pipeline`` (create_run: segment, model fit, artifacts stored; plan_run:
the shards, in-process or on a spawn process pool) and a second (idempotent) pass. Not a
test; results go to benchmarks/README.md.

    taskset -c 0,1 python benchmarks/bench_plan.py --subscribers 100000
    taskset -c 0,1 python benchmarks/bench_plan.py --database-url \
        postgresql+psycopg://postgres@127.0.0.1:5432/benchplan

The PostgreSQL database must be a scratch one: its public schema is dropped and recreated.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import text

from newsletter.config import Settings
from newsletter.db import make_engine, session_scope, upgrade
from newsletter.models import ArtifactKind, Campaign, Run
from newsletter.pipeline import create_run, plan_run
from newsletter.plan import sources
from newsletter.simulate.world import generate_world, world_now
from newsletter.store.artifacts import load_artifact
from newsletter.store.bulk import bulk_insert
from newsletter.store.frames import load_frames
from newsletter.tasks import executor_for

FACTORIES = sources.FACTORIES


def build(url: str, n: int, items: int, interactions: int) -> object:
    """A migrated database holding the world, 1% suppressions and last week's messages."""
    engine = make_engine(url)
    if url.startswith("postgresql"):
        with engine.begin() as c:
            c.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    upgrade(engine)
    now = world_now()
    world = generate_world(subscribers=n, items=items, interactions=interactions, now=now)
    load_frames(engine, frames=world.frames, now=now, origin="bench")
    rng = np.random.default_rng(5)
    with session_scope(engine) as s:
        s.add(Campaign(name="weekly", template_name="digest", created_at=now))
        breaking = Campaign(name="breaking", template_name="t", kind="trigger", created_at=now)
        s.add(breaking)
        s.flush()
        run = Run(campaign_id=breaking.id, scheduled_for=now - timedelta(days=1), created_at=now)
        s.add(run)
        s.flush()
        run_id = run.id
    with engine.begin() as c:
        ids = np.array([r[0] for r in c.execute(text("SELECT id FROM subscriber"))])
        emails = [r[0] for r in c.execute(text("SELECT email FROM subscriber"))]
        sup = rng.choice(len(emails), size=n // 100, replace=False)
        bulk_insert(
            c,
            table="suppression",
            frame=pd.DataFrame(
                {
                    "email": [emails[i] for i in sup],
                    "reason": "bounced",
                    "created_at": pd.Timestamp(now),
                }
            ),
        )
        sent = rng.choice(ids, size=n // 5, replace=False)  # a trigger yesterday for 20%
        when = pd.Timestamp(now) - pd.to_timedelta(rng.integers(4, 30, size=len(sent)), unit="h")
        bulk_insert(
            c,
            table="message",
            frame=pd.DataFrame(
                {
                    "run_id": run_id,
                    "subscriber_id": sent,
                    "arm": "personalized",
                    "status": "sent",
                    "shard": 0,
                    "planned_for": when,
                    "sent_at": when,
                    "attempts": 1,
                    "updated_at": pd.Timestamp(now),
                }
            ),
        )
    return engine


def cpu_seconds() -> float:
    """CPU time (user + system) of this process and its finished children (forked workers)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=3000)
    parser.add_argument("--interactions", type=int, default=1_500_000)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--source", choices=sorted(FACTORIES), default="hybrid")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--database-url", default="", help="scratch database (default: SQLite)")
    args = parser.parse_args()
    url = args.database_url or f"sqlite:///{Path(tempfile.mkdtemp()) / 'bench.db'}"
    t0 = time.perf_counter()
    engine = build(url, args.subscribers, args.items, args.interactions)
    print(f"setup (not timed): {time.perf_counter() - t0:.1f} s  [{url.split(':')[0]}]")
    now = world_now()
    t0, c0 = time.perf_counter(), cpu_seconds()
    prepared = create_run(
        engine,
        campaign="weekly",
        now=now,
        settings=Settings(),
        shard_count=args.shards,
        source_factory=FACTORIES[args.source],
    )
    t1 = time.perf_counter()
    executor = executor_for(args.workers)
    result = plan_run(engine, run_id=prepared.run_id, now=now, executor=executor)
    t2 = time.perf_counter()
    model = load_artifact(engine, run_id=prepared.run_id, kind=ArtifactKind.model)
    size = len(model.content) / 1e6 if model else 0.0
    print(
        f"prepare (segment, load matrices, fit {args.source}, Thompson bank, store the "
        f"{size:.1f} MB model): {t1 - t0:.1f} s"
    )
    print(
        f"shards x{args.shards}, {args.workers} workers (profiles, cadence, arms, slots, "
        f"persist): {t2 - t1:.1f} s"
    )
    print(
        f"total plan: {t2 - t0:.1f} s wall, {cpu_seconds() - c0:.1f} s CPU (all processes); "
        f"new messages {result.new_messages}; stats {result.stats}"
    )
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    t0 = time.perf_counter()
    prepared = create_run(
        engine,
        campaign="weekly",
        now=now,
        settings=Settings(),
        shard_count=args.shards,
        source_factory=FACTORIES[args.source],
    )
    again = plan_run(engine, run_id=prepared.run_id, now=now, executor=executor)
    elapsed = time.perf_counter() - t0
    print(f"re-plan (idempotent): {elapsed:.1f} s; new messages {again.new_messages}")


if __name__ == "__main__":
    main()
