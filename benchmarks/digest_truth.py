"""Score one planned digest against a simulated world's hidden truth, per arm and per section.

A diagnostic, not a benchmark of speed: it builds a world's history with the simulator's
``Loop`` (plus ``--weeks-before`` weeks of site behaviour, no email), loads the matrices the
planner would, fits the campaign's slot source, fills every live subscriber's personalized
and popularity digest with the planner's own ``fill_personalized`` / ``fill_popular`` and
scores each slot with the world's hidden utility (the chance that the subscriber clicks it
when they look at it). It prints the mean utility per arm, per section and per position, the
share of "irrelevant" digests (best slot below the world's ``irrelevant_below``: the
simulator's fatigue trigger), and the oracle. Examples::

    python benchmarks/digest_truth.py --world shop --subscribers 2000 --seed 7
    python benchmarks/digest_truth.py --world news --subscribers 3000 --seed 11 --weeks-before 1 \
        --explore 0.15 --uniform-prior
    python benchmarks/digest_truth.py --world shop --config '{"popularity_weight": 0}'
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from sqlalchemy import text

from newsletter.db import make_engine, upgrade
from newsletter.plan.campaigns import CampaignConfig
from newsletter.plan.exploration import thompson_bank
from newsletter.plan.fill import fill_personalized, fill_popular
from newsletter.plan.sources import default_slot_source, exploration_inputs
from newsletter.simulate.loop import FIRST_SEND, Loop, SimulationConfig, simulation_settings
from newsletter.simulate.params import load_world
from newsletter.store.matrices import load_matrices

WEEK = 7 * 86400.0


def _world(args: argparse.Namespace, folder: Path) -> tuple[Loop, float]:
    """The simulated history in a temporary SQLite database; returns the loop and `now`."""
    url = f"sqlite:///{folder / 'truth.db'}"
    engine = make_engine(url)
    upgrade(engine)
    config = SimulationConfig(
        world=load_world(args.world), subscribers=args.subscribers, weeks=1, seed=args.seed
    )
    loop = Loop(engine, config, simulation_settings(config, url))
    loop.history()
    for week in range(1, args.weeks_before + 1):
        loop.new_week(week)
    return loop, FIRST_SEND.timestamp() + args.weeks_before * WEEK


def _indices(loop: Loop, m) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[no-untyped-def]
    """World indices of the matrices' subscribers and items (keys reader-N, item-N)."""
    with loop.engine.connect() as c:
        subs = dict(c.execute(text("select id, external_key from subscriber")).fetchall())
        items = dict(c.execute(text("select id, external_key from item")).fetchall())
    uw = np.array([int(subs[int(i)].removeprefix("reader-")) - 1 for i in m.subscriber_ids])
    iw = np.array([int(items[int(i)].removeprefix("item-")) - 1 for i in m.item_ids])
    return uw, iw


def _fill(args, m, camp, when, users):  # type: ignore[no-untyped-def]
    """Per arm, (user, slots) of every digest, filled by the planner's own functions."""
    parts = default_slot_source(m, camp, when)
    x = exploration_inputs(m, camp, now=when, exposures={}, clicks={})
    prior = {} if args.uniform_prior else {"prior_mean": x.prior_mean}
    strength = {} if args.uniform_prior else {"prior_strength": x.prior_strength}
    rng = np.random.default_rng(1)
    bank = thompson_bank(
        items=x.pool, clicks=x.clicks, exposures=x.exposures, rng=rng, **prior, **strength
    )
    out: dict[str, list] = {"personalized": [], "popular": []}
    for start in range(0, len(users), 1024):
        batch = users[start : start + 1024]
        pers = fill_personalized(
            parts.source,
            batch,
            config=camp,
            bank=bank,
            history=parts.history,
            means=x.means,
            rng=rng,
        )
        out["personalized"] += list(zip(batch.tolist(), pers, strict=True))
        pop = fill_popular(parts.source, batch, config=camp)
        out["popular"] += list(zip(batch.tolist(), pop, strict=True))
    return out


def _score(loop: Loop, now: float, filled, uw, iw) -> float:  # type: ignore[no-untyped-def]
    """Print the truth of one arm's digests; returns the mean slot utility."""
    rows = [(uw[u], iw[s.item], s.section, p) for u, slots in filled for p, s in enumerate(slots)]
    users, items = np.array([r[0] for r in rows]), np.array([r[1] for r in rows])
    sections, positions = np.array([r[2] for r in rows]), np.array([r[3] for r in rows])
    world = loop.world
    utility = world.utility(users, items, now)
    best = np.zeros(world.people.n)
    np.maximum.at(best, users, utility)
    sent = np.unique(users)
    irrelevant = (best[sent] < world.params.email.irrelevant_below).mean()
    age = np.median((now - world.items.published[items]) / 86400)
    print(
        f"  mean slot utility {utility.mean():.4f}, irrelevant digests {irrelevant:.3f}, "
        f"median item age {age:.1f} days"
    )
    for name in sorted(set(sections.tolist())):
        sel = sections == name
        print(f"    {name:22s} {int(sel.sum()):7d} slots  utility {utility[sel].mean():.4f}")
    by_position = [utility[positions == p].mean() for p in range(positions.max() + 1)]
    print("    by position " + " ".join(f"{v:.4f}" for v in by_position))
    return float(utility.mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", default="news")
    parser.add_argument("--subscribers", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--weeks-before", type=int, default=0)
    parser.add_argument("--explore", type=float, default=0.0)
    parser.add_argument("--uniform-prior", action="store_true", help="Beta(1, 1) exploration")
    parser.add_argument("--config", default="{}", help="campaign config JSON")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    camp = CampaignConfig.model_validate(
        {"exploration_share": args.explore, **json.loads(args.config)}
    )
    with tempfile.TemporaryDirectory() as tmp:
        loop, now = _world(args, Path(tmp))
        m = load_matrices(loop.engine)
        uw, iw = _indices(loop, m)
        users = np.flatnonzero(~loop.world.people.left[uw])
        filled = _fill(args, m, camp, datetime.fromtimestamp(now, UTC), users)
        means = {}
        for arm, digests in filled.items():
            print(arm)
            means[arm] = _score(loop, now, digests, uw, iw)
        oracle = float(loop.world.oracle(uw[users], now, camp.n_items).mean())
    print(
        f"oracle {oracle:.4f}; personalized / oracle {means['personalized'] / oracle:.3f}; "
        f"utility lift {means['personalized'] / means['popular'] - 1:+.3f}"
    )


if __name__ == "__main__":
    main()
