"""Guardrails: what a click lift could be hiding (narrower reading, a stale catalogue, churn).

Pure pandas over the report's frames. Definitions (also printed in the report):

* breadth -- among subscribers with at least one human click in the last 4 runs, the mean
  number of distinct topics of the items they clicked;
* catalogue coverage -- per run, the share of the catalogue in play (items published or
  engaged with in the 28 days before the run, plus anything sent) that the arm showed at
  least once, on an equal-sized random sample of each arm's messages (so a bigger arm does
  not win by size); pooled = mean over runs;
* new-item discovery -- per run, the share of items published in the 7 days before it that
  got a human click from the arm's (equal-sized) sample; pooled = mean over runs;
* exploration vs exploitation -- human click-through of the personalized arm's exploration
  slots against its other slots, also at the exploration slots' own positions (exploration
  sits at the end of the email, where every slot is clicked less);
* unsubscribe rate -- unsubscribes per delivered message, per arm, with a warning when
  personalized exceeds the holdout.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

import numpy as np
import pandas as pd

from newsletter.enums import MessageStatus
from newsletter.models import Arm
from newsletter.report.lift import wilson

WINDOW_RUNS = 4
IN_PLAY = timedelta(days=28)
NEW = timedelta(days=7)
ARMS = (Arm.personalized, Arm.popular)


@dataclass
class Guardrails:
    """Pooled guardrail figures per arm, the per-run series behind the charts, and warnings."""

    breadth: dict[str, float | None] = field(default_factory=dict)
    coverage: dict[str, float | None] = field(default_factory=dict)
    discovery: dict[str, float | None] = field(default_factory=dict)
    explore_ctr: float | None = None
    exploit_ctr: float | None = None
    exploit_ctr_same_positions: float | None = None
    explore_slots: int = 0
    explore_clicks: int = 0
    exploit_slots: int = 0
    unsubscribe_rate: dict[str, float | None] = field(default_factory=dict)
    per_run: list[dict[str, object]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _sample_ids(messages: pd.DataFrame, run_id: int) -> dict[str, set[int]]:
    """Equal-sized random samples of each arm's sent messages in a run (seeded by run id)."""
    rows = messages[(messages["run_id"] == run_id) & (messages["status"] == MessageStatus.sent)]
    rows = rows.sort_values("subscriber_id")  # not by message id: ids depend on write order
    by_arm = {a: rows.loc[rows["arm"] == a, "message_id"].to_numpy() for a in ARMS}
    size = min((len(v) for v in by_arm.values() if len(v)), default=0)
    rng = np.random.default_rng(run_id)
    return {
        a: set(rng.choice(ids, size, replace=False).tolist()) if len(ids) and size else set()
        for a, ids in by_arm.items()
    }


def _coverage_and_discovery(
    run: pd.Series,
    slots: pd.DataFrame,
    items: pd.DataFrame,
    samples: dict[str, set[int]],
    engaged: set[int],
) -> dict[str, object]:
    when = run["scheduled_for"]
    here = slots[slots["run_id"] == run["run_id"]]
    published = items["published_at"]
    recent = items.loc[(published <= when) & (published >= when - IN_PLAY), "item_id"]
    in_play = set(recent.tolist()) | engaged | set(here["item_id"].tolist())
    fresh = set(items.loc[(published <= when) & (published >= when - NEW), "item_id"].tolist())
    row: dict[str, object] = {"run_id": int(run["run_id"]), "scheduled_for": when}
    for arm in ARMS:
        mine = here[here["message_id"].isin(samples[arm])]
        if mine.empty:
            row[f"coverage_{arm}"] = row[f"discovery_{arm}"] = None
            continue
        row[f"coverage_{arm}"] = mine["item_id"].nunique() / max(len(in_play), 1)
        hit = set(mine.loc[mine["clicked"] == 1, "item_id"].tolist()) & fresh
        row[f"discovery_{arm}"] = len(hit) / len(fresh) if fresh else None
    return row


def _breadth(slots: pd.DataFrame, items: pd.DataFrame, run_ids: list[int]) -> dict[str, float]:
    """Mean distinct clicked topics per clicking subscriber over the given runs, per arm."""
    clicks = slots[slots["run_id"].isin(run_ids) & (slots["clicked"] == 1)]
    topics = items.set_index("item_id")["topics"]
    out: dict[str, float] = {}
    for arm in ARMS:
        mine = clicks[clicks["arm"] == arm]
        if mine.empty:
            continue
        exploded = pd.DataFrame(
            {
                "subscriber_id": mine["subscriber_id"].to_numpy(),
                "topic": topics.reindex(mine["item_id"]).to_numpy(),
            }
        ).explode("topic")
        out[str(arm)] = float(exploded.dropna().groupby("subscriber_id")["topic"].nunique().mean())
    return out


def _slot_ctrs(guard: Guardrails, slots: pd.DataFrame) -> None:
    mine = slots[slots["arm"] == Arm.personalized]
    explore = mine[mine["source"] == "explore"]
    exploit = mine[mine["source"] != "explore"]
    guard.explore_slots, guard.exploit_slots = len(explore), len(exploit)
    guard.explore_clicks = int(explore["clicked"].sum())
    if len(explore):
        guard.explore_ctr = float(explore["clicked"].mean())
    if len(exploit):
        guard.exploit_ctr = float(exploit["clicked"].mean())
    if len(explore) and len(exploit):
        weights = explore["position"].value_counts(normalize=True)
        by_position = exploit.groupby("position")["clicked"].mean()
        shared = weights.index.intersection(by_position.index)
        if len(shared):
            w = weights[shared] / weights[shared].sum()
            guard.exploit_ctr_same_positions = float((w * by_position[shared]).sum())


def _unsubscribes(guard: Guardrails, messages: pd.DataFrame) -> None:
    sent = messages[messages["status"] == MessageStatus.sent]
    rates = {}
    for arm in ARMS:
        rows = sent[sent["arm"] == arm]
        if len(rows):
            rates[str(arm)] = wilson(int(rows["unsubscribe"].sum()), len(rows))
    guard.unsubscribe_rate = {a: r.value for a, r in rates.items()}
    p, h = rates.get(Arm.personalized), rates.get(Arm.popular)
    if p and h and p.value > h.value:
        overlap = p.low <= h.high
        guard.warnings.append(
            f"personalized subscribers unsubscribe more than the holdout: "
            f"{100 * p.value:.2f}% vs {100 * h.value:.2f}% of delivered messages"
            + (" (the 95% intervals overlap, so this may be noise)" if overlap else "")
        )


def guardrails(
    *,
    runs: pd.DataFrame,
    messages: pd.DataFrame,
    slots: pd.DataFrame,
    items: pd.DataFrame,
    engaged: dict[int, set[int]],
) -> Guardrails:
    """Every guardrail of the module docstring, pooled and per run."""
    guard = Guardrails()
    order = runs["run_id"].tolist()
    for k, (_, run) in enumerate(runs.iterrows()):
        samples = _sample_ids(messages, int(run["run_id"]))
        row = _coverage_and_discovery(
            run, slots, items, samples, engaged.get(int(run["run_id"]), set())
        )
        window = order[max(0, k - WINDOW_RUNS + 1) : k + 1]
        for arm, value in _breadth(slots, items, window).items():
            row[f"breadth_{arm}"] = value
        guard.per_run.append(row)
    for arm in ARMS:
        for name in ("coverage", "discovery"):
            values = [
                r[f"{name}_{arm}"] for r in guard.per_run if r.get(f"{name}_{arm}") is not None
            ]
            getattr(guard, name)[str(arm)] = float(np.mean(values)) if values else None  # type: ignore[arg-type]
        last = guard.per_run[-1].get(f"breadth_{arm}") if guard.per_run else None
        guard.breadth[str(arm)] = last  # type: ignore[assignment]
    _slot_ctrs(guard, slots)
    _unsubscribes(guard, messages)
    return guard
