"""Off-policy evaluation of the exploration slot from its logged propensities.

Every exploration slot records the item the policy chose and the probability it chose it
(``Slot.propensity``). That is enough to estimate what the slot's human click-through would
have been under *another* policy, without running it:

* IPS (inverse propensity scoring): ``V = mean(1[a = pi(x)] * click / p)``;
* SNIPS (self-normalised): ``V = sum(w * click) / sum(w)`` with ``w = 1[a = pi(x)] / p``,
  biased a little, much less variable.

The target policy evaluated here is ``popular``: in each exploration slot, the most popular
item (by the run's logged popularity scores: the popularity holdout and the trending
section log them as slot scores) that the subscriber had not consumed before the run and
that an earlier exploration slot of the same message did not take -- exactly what the
planner's ``exploration_policy = "popular"`` does. Intervals come from a bootstrap over
subscribers (clustered, seeded). The estimate is only as good as the overlap: a target item
that the logging policy could never pick (propensity 0) is never matched, so the report
shows how many slots matched and the effective sample size.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from newsletter.models import Arm

DRAWS = 1000
TOP = 60
Consumed = Callable[[list[int], list[int], int], set[tuple[int, int]]]


@dataclass(frozen=True)
class OffPolicy:
    """Estimates of one target policy's exploration-slot click-through."""

    policy: str
    rounds: int  # exploration slots logged
    matched: int  # slots where the logged item is what the target policy would pick
    effective_n: float
    logged_ctr: float | None  # what the logging policy actually got in those slots
    ips: float | None
    ips_low: float | None
    ips_high: float | None
    snips: float | None
    snips_low: float | None
    snips_high: float | None


def popularity_rankings(slots: pd.DataFrame) -> dict[int, list[int]]:
    """Per run: items by logged popularity score, best first (ties by item id)."""
    popular = slots[slots["source"] == "popularity"]
    best = popular.groupby(["run_id", "item_id"])["score"].max().reset_index()
    out: dict[int, list[int]] = {}
    ordered = best.sort_values(["run_id", "score", "item_id"], ascending=[True, False, True])
    for run_id, item_id in zip(
        ordered["run_id"].astype(int).tolist(), ordered["item_id"].astype(int).tolist(), strict=True
    ):
        ranked = out.setdefault(run_id, [])
        if len(ranked) < TOP:
            ranked.append(item_id)
    return out


def target_choices(
    explore: pd.DataFrame, rankings: dict[int, list[int]], consumed: set[tuple[int, int]]
) -> np.ndarray:
    """The popular policy's item for every exploration round (-1 when it has none)."""
    out = np.full(len(explore), -1, dtype=np.int64)
    taken: dict[int, set[int]] = {}
    columns = ("message_id", "run_id", "subscriber_id", "item_id")
    lists = [explore[c].astype(int).tolist() for c in columns]
    for k, (message, run, subscriber, logged) in enumerate(zip(*lists, strict=True)):
        earlier = taken.setdefault(message, set())
        for item in rankings.get(run, []):
            if item not in earlier and (subscriber, item) not in consumed:
                out[k] = item
                break
        earlier.add(logged)
    return out


def _bootstrap(
    groups: np.ndarray, wr: np.ndarray, w: np.ndarray, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Resampled IPS and SNIPS values, resampling subscribers with Poisson(1) weights."""
    codes, inverse = np.unique(groups, return_inverse=True)
    sum_wr = np.bincount(inverse, weights=wr, minlength=len(codes))
    sum_w = np.bincount(inverse, weights=w, minlength=len(codes))
    count = np.bincount(inverse, minlength=len(codes)).astype(np.float64)
    rng = np.random.default_rng(seed)
    ips, snips = np.empty(DRAWS), np.empty(DRAWS)
    for start in range(0, DRAWS, 100):
        k = min(100, DRAWS - start)
        weights = rng.poisson(1.0, (k, len(codes))).astype(np.float64)
        top = weights @ sum_wr
        ips[start : start + k] = top / np.maximum(weights @ count, 1e-12)
        snips[start : start + k] = top / np.maximum(weights @ sum_w, 1e-12)
    return ips, snips


def evaluate_popular(slots: pd.DataFrame, *, consumed: Consumed, seed: int = 0) -> OffPolicy:
    """IPS and SNIPS estimates of the popular policy in the personalized exploration slots."""
    explore = slots[(slots["arm"] == Arm.personalized) & (slots["source"] == "explore")]
    explore = explore[explore["propensity"] > 0].sort_values(["message_id", "position"])
    rankings = popularity_rankings(slots)
    pairs: set[tuple[int, int]] = set()
    for run_id in sorted(set(explore["run_id"].astype(int).tolist())):
        rows = explore[explore["run_id"] == run_id]
        ranked = rankings.get(run_id, [])
        pairs |= consumed(rows["subscriber_id"].astype(int).tolist(), ranked, run_id)
    chosen = target_choices(explore, rankings, pairs)
    logged = explore["item_id"].to_numpy(np.int64)
    clicks = explore["clicked"].to_numpy(np.float64)
    w = np.where(logged == chosen, 1.0 / explore["propensity"].to_numpy(np.float64), 0.0)
    n, matched = len(explore), int((w > 0).sum())
    if n == 0:
        return OffPolicy("popular", 0, 0, 0.0, None, None, None, None, None, None, None)
    wr = w * clicks
    ess = float(w.sum() ** 2 / (w * w).sum()) if matched else 0.0
    ips = float(wr.mean())
    snips = float(wr.sum() / w.sum()) if matched else None
    boot_ips, boot_snips = _bootstrap(explore["subscriber_id"].to_numpy(), wr, w, seed)
    lo_i, hi_i = np.percentile(boot_ips, [2.5, 97.5])
    lo_s, hi_s = np.percentile(boot_snips, [2.5, 97.5]) if matched else (None, None)
    return OffPolicy(
        policy="popular",
        rounds=n,
        matched=matched,
        effective_n=ess,
        logged_ctr=float(clicks.mean()),
        ips=ips,
        ips_low=float(lo_i),
        ips_high=float(hi_i),
        snips=snips,
        snips_low=None if lo_s is None else float(lo_s),
        snips_high=None if hi_s is None else float(hi_s),
    )
