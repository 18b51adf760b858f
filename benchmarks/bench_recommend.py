"""Benchmark the hybrid recommender: fit plus top-20 for every subscriber, time and peak memory.

Usage::

    python benchmarks/bench_recommend.py                      # 10k, 100k and 1M subscribers
    python benchmarks/bench_recommend.py --subscribers 100000 # one size
    python benchmarks/bench_recommend.py --subscribers 100000 --explain 10000

Each size runs in its own subprocess so the peak resident memory (``ru_maxrss``) is per size.
Synthetic data is generated with numpy: 20k items in 40 topics, 20 interactions per subscriber
(so 2M at 100k subscribers) with Zipf-like item popularity and topic-clustered tastes, mixed
kinds (view/read/click/purchase) over 90 days, a few machine-flagged events.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

N_ITEMS = 20_000
PER_SUBSCRIBER = 20
N_TOPICS = 40
NOW = 1_750_000_000.0
DAY = 86400.0


def synthetic(n_users: int, *, seed: int = 0) -> tuple[object, object]:
    """Return (InteractionData, ItemCatalog) for ``n_users`` subscribers and 20k items."""
    from newsletter.recommend.base import InteractionData, ItemCatalog

    rng = np.random.default_rng(seed)
    item_topic = rng.integers(0, N_TOPICS, N_ITEMS)
    popularity = 1.0 / np.arange(1, N_ITEMS + 1) ** 0.8
    rng.shuffle(popularity)
    by_topic = [np.flatnonzero(item_topic == t) for t in range(N_TOPICS)]
    topic_p = [popularity[ix] / popularity[ix].sum() for ix in by_topic]
    n = n_users * PER_SUBSCRIBER
    users = np.repeat(np.arange(n_users), PER_SUBSCRIBER)
    fav = rng.integers(0, N_TOPICS, (n_users, 2))
    in_fav = rng.random(n) < 0.8
    topic = np.where(in_fav, fav[users, rng.integers(0, 2, n)], rng.integers(0, N_TOPICS, n))
    items = np.empty(n, dtype=np.int64)
    for t in range(N_TOPICS):
        sel = np.flatnonzero(topic == t)
        items[sel] = rng.choice(by_topic[t], size=len(sel), p=topic_p[t])
    kinds = np.array(["view", "read", "click", "purchase"])[
        rng.choice(4, n, p=[0.5, 0.3, 0.15, 0.05])
    ]
    data = InteractionData(
        n_users=n_users,
        n_items=N_ITEMS,
        user_idx=users,
        item_idx=items,
        kind=kinds,
        timestamp=NOW - rng.uniform(0, 90, n) * DAY,
        machine=rng.random(n) < 0.02,
        user_topics=[[f"topic{t}"] for t in fav[:, 0]],
    )
    words = [f"w{t}_{k}" for t in range(N_TOPICS) for k in range(25)]
    noise = rng.integers(0, len(words), N_ITEMS)
    texts = [
        " ".join(words[t * 25 + k] for k in rng.integers(0, 25, 8)) + " " + words[x]
        for t, x in zip(item_topic, noise, strict=True)
    ]
    catalog = ItemCatalog(
        titles=[f"Item {i}" for i in range(N_ITEMS)],
        texts=texts,
        topics=[[f"topic{t}"] for t in item_topic],
        published_at=NOW - rng.uniform(0, 365, N_ITEMS) * DAY,
    )
    return data, catalog


def run_one(n_users: int, explain: int) -> dict[str, float]:
    """Generate, fit and recommend top-20 for every subscriber; return timings and peak RSS."""
    from newsletter.recommend.hybrid import HybridRecommender

    t0 = time.perf_counter()
    data, catalog = synthetic(n_users)
    t1, c1 = time.perf_counter(), time.process_time()
    model = HybridRecommender().fit(data, catalog, now=NOW)  # type: ignore[arg-type]
    t2, c2 = time.perf_counter(), time.process_time()
    items, _ = model.recommend(np.arange(n_users), 20)
    t3, c3 = time.perf_counter(), time.process_time()
    out = {
        "subscribers": n_users,
        "items": N_ITEMS,
        "interactions": int(n_users * PER_SUBSCRIBER),
        "generate_s": round(t1 - t0, 2),
        "fit_s": round(t2 - t1, 2),
        "recommend_s": round(t3 - t2, 2),
        "fit_plus_top20_s": round(t3 - t1, 2),
        "fit_cpu_s": round(c2 - c1, 2),
        "recommend_cpu_s": round(c3 - c2, 2),
        "load_average_1m": os.getloadavg()[0],
        "filled_slots": float(np.mean(items >= 0)),
    }
    if explain:
        t4 = time.perf_counter()
        model.recommend_explained(np.arange(min(explain, n_users)), 20)
        out["explained_users"] = min(explain, n_users)
        out["explain_s"] = round(time.perf_counter() - t4, 2)
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return out


def main() -> None:
    """Run each requested size in a subprocess and print one JSON line per size."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, action="append")
    parser.add_argument("--explain", type=int, default=0, help="also explain N subscribers")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    sizes = args.subscribers or [10_000, 100_000, 1_000_000]
    if args.worker:
        print(json.dumps(run_one(sizes[0], args.explain)), flush=True)
        return
    for size in sizes:
        cmd = [sys.executable, __file__, "--worker", "--subscribers", str(size)]
        cmd += ["--explain", str(args.explain)]
        proc = subprocess.run(
            cmd, capture_output=True, text=True, env=os.environ.copy(), check=False
        )
        if proc.returncode != 0:
            print(json.dumps({"subscribers": size, "error": proc.stderr.strip()[-500:]}))
            continue
        print(proc.stdout.strip(), flush=True)


if __name__ == "__main__":
    main()
