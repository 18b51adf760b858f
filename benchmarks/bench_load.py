"""Benchmark: generate and bulk-load a synthetic publisher into SQLite and PostgreSQL.

    python benchmarks/bench_load.py [--subscribers 100000 --items 20000 --interactions 2000000]
                                    [--database sqlite|postgres|both]

Target (issue 2): 2M interactions into PostgreSQL in under 30 s on 2 cores. Each database is
measured in its own process so peak memory is per database. PostgreSQL: a fresh schema in
NEWSLETTER_BENCH_POSTGRES_URL (default postgresql://postgres@127.0.0.1:5432/test), dropped after.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import Timer
from sqlalchemy import text

from newsletter.db import make_engine, upgrade
from newsletter.simulate.world import generate_world, world_now
from newsletter.store.frames import load_frames
from newsletter.store.queries import count_rows

POSTGRES_URL = os.environ.get(
    "NEWSLETTER_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


def measure(database: str, args: argparse.Namespace) -> None:
    """Generate the world and load it into one database, printing each step."""
    timer = Timer(f"load-{database}-{args.subscribers}")
    now = world_now()
    with timer.step("generate", count=args.interactions, unit="interactions"):
        world = generate_world(
            subscribers=args.subscribers, items=args.items, interactions=args.interactions, now=now
        )
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as folder:
        if database == "sqlite":
            engine = make_engine(f"sqlite:///{Path(folder) / 'bench.db'}")
        else:
            admin = make_engine(POSTGRES_URL)
            with admin.begin() as connection:
                connection.execute(text(f"CREATE SCHEMA {schema}"))
            engine = make_engine(POSTGRES_URL, connect_args={"options": f"-csearch_path={schema}"})
        try:
            upgrade(engine)
            rows = len(world.frames.interactions)
            with timer.step(f"load into {database}", count=rows, unit="interactions"):
                load_frames(engine, frames=world.frames, now=now, origin="benchmark")
            print(count_rows(engine), flush=True)
        finally:
            engine.dispose()
            if database == "postgres":
                with admin.begin() as connection:
                    connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    timer.save()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--interactions", type=int, default=2_000_000)
    parser.add_argument("--database", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--in-process", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.in_process:
        measure(args.database, args)
        return
    for database in ["sqlite", "postgres"] if args.database == "both" else [args.database]:
        print(f"== {database}", flush=True)
        command = [
            sys.executable,
            __file__,
            "--in-process",
            "--database",
            database,
            "--subscribers",
            str(args.subscribers),
            "--items",
            str(args.items),
            "--interactions",
            str(args.interactions),
        ]
        subprocess.run(command, check=True)


if __name__ == "__main__":
    main()
