"""Trigger evaluation against events arriving through the events API, 100k subscribers stored.

    python benchmarks/bench_triggers.py --subscribers 100000 --rate 1000 --duration 30

Builds a scratch PostgreSQL schema with `--subscribers` subscribers, 2,000 items in 20 topics,
100,000 older views (so popularity has signal) and three trigger campaigns (abandoned cart,
more on <topic>, welcome). The events API runs in its own process (uvicorn, as in
bench_tracking.py). A load thread posts `--rate` events per second in 10 batches a second for
`--duration` seconds: random reads, carts and purchases, plus `--readers` subscribers a second
who read three items of one topic (each such third read must become a "More on <topic>"
message). The main thread sweeps the triggers back to back, as the scheduler's ``triggers``
job does each minute (`pipeline.sweep_triggers` at the wall clock), until every posted event
is evaluated. Reported: events/s posted and evaluated, the evaluator thread's CPU seconds per
1,000 events, sweep times, and the delay from the API's answer to the third read until its
message is written (queued), p50/p95/max. Bounded: the load stops after --duration.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from bench_tracking import free_port, start_server
from harness import RESULTS_DIR
from sqlalchemy import Engine, func, insert, select, text

from newsletter import pipeline
from newsletter.config import Settings
from newsletter.db import make_engine, upgrade
from newsletter.models import Item, Subscriber
from newsletter.store.apikeys import create_key
from newsletter.store.trigger_cursor import cursor
from newsletter.tables import (
    campaign_table,
    interaction_table,
    item_table,
    item_topic_table,
    message_table,
    subscriber_table,
)

POSTGRES_URL = os.environ.get(
    "NEWSLETTER_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
ITEMS, TOPICS, HISTORY = 2000, 20, 100_000
LOOSE = {"max_per_day": 50, "max_per_7_days": 200, "min_gap_hours": 0}
RULES = {
    "cart": {"kind": "abandoned_cart", "delay_hours": 1},
    "topic": {"kind": "topic_reads", "min_reads": 3, "window_hours": 24},
    "welcome": {"kind": "welcome", "steps_days": [0, 3]},
}


def build(engine: Engine, subscribers: int, now: datetime) -> None:
    """Subscribers, items with topics, older views and the three trigger campaigns."""
    rng = random.Random(7)
    old = now - timedelta(days=60)
    with engine.begin() as c:
        for start in range(0, subscribers, 20_000):
            c.execute(
                insert(subscriber_table),
                [
                    {
                        "external_key": f"s{n}",
                        "email": f"s{n}@example.com",
                        "timezone": "UTC",
                        "topics": [],
                        "attributes": {},
                        "created_at": old,
                        "updated_at": old,
                    }
                    for n in range(start, min(subscribers, start + 20_000))
                ],
            )
        c.execute(
            insert(item_table),
            [
                {
                    "external_key": f"i{n}",
                    "title": f"Item {n}",
                    "url": f"https://example.com/{n}",
                    "topics": [f"t{n % TOPICS}"],
                    "summary": "",
                    "attributes": {},
                    "published_at": now - timedelta(hours=n % 500),
                    "updated_at": old,
                }
                for n in range(ITEMS)
            ],
        )
    _history_and_campaigns(engine, subscribers, old, rng)


def _history_and_campaigns(
    engine: Engine, subscribers: int, old: datetime, rng: random.Random
) -> None:
    """Item topics, older views and the three trigger campaigns."""
    with engine.begin() as c:
        first_item = c.execute(select(func.min(Item.id))).scalar_one()  # type: ignore[arg-type]
        first_sub = c.execute(select(func.min(Subscriber.id))).scalar_one()  # type: ignore[arg-type]
        c.execute(
            insert(item_topic_table),
            [{"item_id": first_item + n, "topic": f"t{n % TOPICS}"} for n in range(ITEMS)],
        )
        history = {
            (first_sub + rng.randrange(subscribers), first_item + rng.randrange(ITEMS))
            for _ in range(HISTORY)
        }
        c.execute(
            insert(interaction_table),
            [
                {
                    "subscriber_id": s,
                    "item_id": i,
                    "kind": "view",
                    "source": "import",
                    "occurred_at": old + timedelta(minutes=k),
                }
                for k, (s, i) in enumerate(history)
            ],
        )
        for name, rule in RULES.items():
            config = {
                "ranker": "popularity",
                "n_items": 4,
                "arms": {"popular": 0.0},
                "cadence": LOOSE,
                "trigger": rule,
            }
            c.execute(
                insert(campaign_table).values(
                    name=name,
                    kind="trigger",
                    template_name="trigger",
                    config=config,
                    created_at=old,
                )
            )


class Load(threading.Thread):
    """Posts `rate` events a second in 10 batches for `duration` seconds."""

    def __init__(
        self,
        base: str,
        key: str,
        *,
        rate: int,
        readers: int,
        duration: float,
        subscribers: int,
        seed: int = 11,
    ) -> None:
        super().__init__(daemon=True)
        self.base, self.key, self.rate, self.readers = base, key, rate, readers
        self.duration, self.subscribers = duration, subscribers
        self.posted = 0
        self.seed = seed
        self.completing: dict[str, float] = {}  # subscriber key -> when its third read was stored
        self.busy = 0.0
        self.elapsed = 0.0  # seconds from the first post to the last answer

    def _batch(self, rng: random.Random, tick: int, now: datetime) -> tuple[list[dict], list[str]]:
        rows, trios = [], []
        if tick % 10 == 0:  # this second's readers: three reads of one topic each
            for _ in range(self.readers):
                who = f"s{rng.randrange(self.subscribers)}"
                topic = rng.randrange(TOPICS)
                for k in range(3):
                    item = topic + TOPICS * rng.randrange(ITEMS // TOPICS)
                    at = (now + timedelta(milliseconds=k)).isoformat()
                    rows.append(
                        {
                            "subscriber_key": who,
                            "item_key": f"i{item}",
                            "kind": "read",
                            "occurred_at": at,
                        }
                    )
                trios.append(who)
        while len(rows) < self.rate // 10:
            kind = rng.choices(["read", "cart", "purchase"], [7, 2, 1])[0]
            rows.append(
                {
                    "subscriber_key": f"s{rng.randrange(self.subscribers)}",
                    "item_key": f"i{rng.randrange(ITEMS)}",
                    "kind": kind,
                    "occurred_at": (now + timedelta(microseconds=len(rows))).isoformat(),
                }
            )
        return rows, trios

    def run(self) -> None:
        rng = random.Random(self.seed)
        headers = {"Authorization": f"Bearer {self.key}"}
        with httpx.Client(base_url=self.base, timeout=60, headers=headers) as client:
            start = time.monotonic()
            for tick in range(int(self.duration * 10)):
                time.sleep(max(0.0, start + tick / 10 - time.monotonic()))
                rows, trios = self._batch(rng, tick, datetime.now(UTC))
                began = time.monotonic()
                response = client.post("/api/events", json={"events": rows})
                answered = time.monotonic()
                self.busy += answered - began
                assert response.status_code == 200, response.text[:300]
                self.posted += len(rows)
                self.completing.update((who, time.time()) for who in trios)
            self.elapsed = time.monotonic() - start


def _queued(engine: Engine, run_ids: list[int]) -> list[str]:
    m, s = message_table.c, subscriber_table.c
    with engine.connect() as c:
        rows = c.execute(
            select(s.external_key)
            .join(subscriber_table, s.id == m.subscriber_id)
            .where(m.run_id.in_(run_ids), m.status == "planned")
        )
        return [str(k) for k in rows.scalars()]


def sweep_until_done(engine: Engine, load: Load, settings: Settings, total_before: int) -> dict:
    """Sweep back to back while the load runs and until every posted event is evaluated."""
    queued_at: dict[str, float] = {}
    sweeps: list[float] = []
    cpu = time.thread_time()
    while True:
        began = time.perf_counter()
        fired, errors = pipeline.sweep_triggers(engine, now=datetime.now(UTC), settings=settings)
        assert not errors, errors
        topic_runs = [f.run_id for f in fired if f.campaign == "topic"]
        done = time.time()
        for who in _queued(engine, topic_runs) if topic_runs else []:
            queued_at.setdefault(who, done)
        sweeps.append(time.perf_counter() - began)
        evaluated = cursor(engine, entity="interaction") - total_before
        if not load.is_alive() and evaluated >= load.posted:
            break
    return {"queued_at": queued_at, "sweeps": sweeps, "cpu": time.thread_time() - cpu}


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def scratch_schema() -> Iterator[str]:
    """A new PostgreSQL schema (its URL), dropped afterwards."""
    schema = f"bench_trig_{uuid.uuid4().hex[:8]}"
    admin = make_engine(POSTGRES_URL)
    with admin.begin() as c:
        c.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as c:
            c.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def timed(label: str, step: Callable[[], object]) -> None:
    began = time.perf_counter()
    step()
    print(json.dumps({"step": label, "seconds": round(time.perf_counter() - began, 1)}))


def summarize(args: argparse.Namespace, load: Load, result: dict, elapsed: float) -> dict:
    """The figures of one run (delays: third read answered -> message written)."""
    delays = sorted(
        result["queued_at"][who] - at
        for who, at in load.completing.items()
        if who in result["queued_at"]
    )
    sweeps = sorted(result["sweeps"])

    def q(p: float) -> float | None:
        return round(delays[min(len(delays) - 1, int(p * len(delays)))], 2) if delays else None

    return {
        "subscribers": args.subscribers,
        "events_posted": load.posted,
        "posted_per_s": round(load.posted / load.elapsed),
        "posting_seconds": round(load.elapsed, 1),
        "evaluated_per_s": round(load.posted / elapsed),
        "seconds_until_all_evaluated": round(elapsed, 1),
        "evaluator_cpu_s": round(result["cpu"], 1),
        "evaluator_cpu_ms_per_1000_events": round(1000 * 1000 * result["cpu"] / load.posted, 1),
        "api_busy_s": round(load.busy, 1),
        "sweeps": len(sweeps),
        "sweep_s_p50": round(sweeps[len(sweeps) // 2], 2),
        "sweep_s_max": round(sweeps[-1], 2),
        "trios": len(load.completing),
        "trio_messages_queued": len(delays),
        "delay_s_p50": q(0.5),
        "delay_s_p95": q(0.95),
        "delay_s_max": q(1.0),
        "load_average": os.getloadavg(),
    }


def measure(url: str, args: argparse.Namespace) -> dict:
    """Build, warm up (first sweep, model fit), then load and sweep; returns the figures."""
    engine = make_engine(url)
    upgrade(engine)
    now = datetime.now(UTC)
    settings = Settings(database_url=url)
    timed("build", lambda: build(engine, args.subscribers, now))
    sweep = lambda: pipeline.sweep_triggers(engine, now=datetime.now(UTC), settings=settings)  # noqa: E731
    timed("first sweep over the history (no states)", sweep)
    key = create_key(engine, name="bench", scope="events", rate_limit=10**9, now=now)[1]
    port = free_port()
    server = start_server(url, port)
    base = f"http://127.0.0.1:{port}"
    try:
        Load(
            base, key, rate=30, readers=1, duration=0.1, subscribers=args.subscribers, seed=5
        ).run()
        timed("warm-up sweep (one trio: fits the model)", sweep)
        before = cursor(engine, entity="interaction")
        server_cpu = _cpu_seconds(server.pid)
        load = Load(
            base,
            key,
            rate=args.rate,
            readers=args.readers,
            duration=args.duration,
            subscribers=args.subscribers,
        )
        started = time.perf_counter()
        load.start()
        result = sweep_until_done(engine, load, settings, before)
        summary = summarize(args, load, result, time.perf_counter() - started)
        summary["api_server_cpu_s"] = round(_cpu_seconds(server.pid) - server_cpu, 1)
        return summary
    finally:
        server.terminate()
        server.wait(timeout=30)
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--rate", type=int, default=1000, help="events per second")
    parser.add_argument("--readers", type=int, default=10, help="three-read trios per second")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of load")
    args = parser.parse_args()
    with scratch_schema() as url:
        summary = measure(url, args)
    print(json.dumps(summary, indent=1))
    RESULTS_DIR.mkdir(exist_ok=True)
    (RESULTS_DIR / "bench_triggers.json").write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
