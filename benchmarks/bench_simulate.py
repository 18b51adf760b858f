"""Simulate a world with exploration on and off (and the OPE check); print a markdown table.

    python benchmarks/bench_simulate.py                       # news, 20,000 x 8 weeks, seed 7
    python benchmarks/bench_simulate.py --subscribers 5000 --check-ope

Each simulation runs in this process, one after another, with its wall and CPU time.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from dataclasses import replace

from newsletter.simulate.loop import SimulationConfig
from newsletter.simulate.params import load_world
from newsletter.simulate.run import run_simulation


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--world", default="news")
    parser.add_argument("--subscribers", type=int, default=20000)
    parser.add_argument("--weeks", type=int, default=8)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--check-ope", action="store_true")
    args = parser.parse_args()
    base = SimulationConfig(
        world=load_world(args.world),
        subscribers=args.subscribers,
        weeks=args.weeks,
        seed=args.seed,
        workers=args.workers,
    )
    rows = []
    for explore in (0.15, 0.0):
        wall, cpu = time.perf_counter(), _cpu()
        out = run_simulation(
            replace(base, explore=explore), check_ope=bool(args.check_ope and explore)
        )
        out["wall_seconds"] = round(time.perf_counter() - wall, 1)
        out["cpu_seconds"] = round(_cpu() - cpu, 1)
        rows.append(out)
        print(json.dumps(out), flush=True)
    print("| exploration | CTR personalized | lift [95% CI] | coverage | discovery | wall / CPU |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    for out in rows:
        ci = out["lift_ci95"] or [0, 0]
        print(
            f"| {out['explore']:.0%} | {out['arms']['personalized']['ctr']:.2%} | "
            f"{out['lift']:+.1%} [{ci[0]:+.1%}, {ci[1]:+.1%}] | {out['coverage']:.1%} | "
            f"{out['discovery']:.1%} | {out['wall_seconds']} s / {out['cpu_seconds']} s |"
        )


if __name__ == "__main__":
    main()
