"""Counts per arm, per run and pooled over runs, and the lift with a clustered bootstrap.

Pure pandas/numpy over the message rows of ``store.outcomes.message_outcomes`` (no database).
The same people get every week's digest, so weeks are not independent: the pooled interval
comes from a bootstrap over *subscribers* (each resample draws subscribers, with all their
weeks, within each arm; Poisson(1) weights, seeded, so the same data give the same interval).
A lift is ``rate(personalized) / rate(other) - 1``.

The verdict never calls a loss a win: it is ``win`` only when the whole 95% interval is above
zero, ``loss`` when it is below, and otherwise says how many more subscriber-weeks would be
needed to detect a 10% lift with 80% power at this click-through, holdout share and
clustering (the design effect measured by the bootstrap).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from newsletter.enums import MessageStatus
from newsletter.models import Arm
from newsletter.report.lift import Rate, wilson

DRAWS = 1000
TARGET_LIFT = 0.10
Z_95, Z_POWER = 1.959964, 0.841621


@dataclass(frozen=True)
class ArmSummary:
    """One arm over the messages given (a run, or every run pooled)."""

    arm: str
    delivered: int  # messages accepted by the mail server
    human_opens: int  # messages a person opened (a human click counts as an open)
    machine_opens: int  # messages opened only by machines (Apple MPP, scanners)
    human_clicks: int  # messages with at least one click by a person
    any_clicks: int  # messages with any click, machine clicks included (unfiltered)
    unsubscribes: int
    bounces: int
    complaints: int
    members: int  # control arm: subscribers held out (no message)
    site_active: int  # subscribers active on the site in the week after the run
    ctr: Rate
    click_to_open: float | None
    unsubscribe_rate: float | None

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["ctr"] = {"value": self.ctr.value, "low": self.ctr.low, "high": self.ctr.high}
        return out


@dataclass(frozen=True)
class LiftEstimate:
    """Relative lift of personalized over another arm on one per-message 0/1 metric."""

    metric: str
    versus: str
    a: float
    b: float
    lift: float | None
    low: float | None
    high: float | None
    subscriber_weeks: int
    subscribers: int
    design_effect: float
    b_share: float  # share of the subscriber-weeks in arm b

    @property
    def significant(self) -> bool:
        return self.low is not None and (self.low > 0 or (self.high or 0) < 0)


def arm_summaries(messages: pd.DataFrame) -> dict[str, ArmSummary]:
    """Counts per arm over the given message rows (control rows count members only)."""
    out: dict[str, ArmSummary] = {}
    for arm, rows in messages.groupby("arm", sort=True):
        sent = rows[rows["status"] == MessageStatus.sent]
        delivered = len(sent)
        opens, clicks = int(sent["human_open"].sum()), int(sent["human_click"].sum())
        out[str(arm)] = ArmSummary(
            arm=str(arm),
            delivered=delivered,
            human_opens=opens,
            machine_opens=int(sent["machine_open"].sum()),
            human_clicks=clicks,
            any_clicks=int(sent["any_click"].sum()),
            unsubscribes=int(sent["unsubscribe"].sum()),
            bounces=int(rows["bounce"].sum()),
            complaints=int(sent["complaint"].sum()),
            members=int((rows["reason"] == "control_arm").sum()),
            site_active=int(rows["site_active"].sum()),
            ctr=wilson(clicks, delivered),
            click_to_open=clicks / opens if opens else None,
            unsubscribe_rate=int(sent["unsubscribe"].sum()) / delivered if delivered else None,
        )
    return out


def _totals(rows: pd.DataFrame, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Per subscriber: messages and successes (the bootstrap's clusters)."""
    grouped = rows.groupby("subscriber_id")[metric].agg(["size", "sum"])
    return grouped["size"].to_numpy(np.float64), grouped["sum"].to_numpy(np.float64)


def _boot_rates(n: np.ndarray, c: np.ndarray, rng: np.random.Generator, draws: int) -> np.ndarray:
    """Resampled rates sum(w c) / sum(w n) with Poisson(1) weights per subscriber."""
    out = np.empty(draws)
    for start in range(0, draws, 100):
        k = min(100, draws - start)
        weights = rng.poisson(1.0, (k, len(n))).astype(np.float64)
        out[start : start + k] = (weights @ c) / np.maximum(weights @ n, 1e-12)
    return out


def lift_estimate(
    messages: pd.DataFrame,
    *,
    metric: str,
    versus: str = Arm.popular,
    seed: int = 0,
    draws: int = DRAWS,
    label: str | None = None,
) -> LiftEstimate | None:
    """Lift of personalized over `versus` on `metric`, interval clustered by subscriber.

    None when either arm has no rows. For the control arm the rows are its members (no
    message), so only site metrics make sense there.
    """
    a_rows = messages[messages["arm"] == Arm.personalized]
    b_rows = messages[messages["arm"] == versus]
    if versus != Arm.control:
        a_rows, b_rows = (
            a_rows[a_rows["status"] == MessageStatus.sent],
            b_rows[b_rows["status"] == MessageStatus.sent],
        )
    if a_rows.empty or b_rows.empty:
        return None
    na, ca = _totals(a_rows, metric)
    nb, cb = _totals(b_rows, metric)
    ra, rb = ca.sum() / na.sum(), cb.sum() / nb.sum()
    weeks, people = int(na.sum() + nb.sum()), len(na) + len(nb)
    if ca.sum() == 0 or cb.sum() == 0:
        return LiftEstimate(
            label or metric, versus, ra, rb, None, None, None, weeks, people, 1.0, nb.sum() / weeks
        )
    rng = np.random.default_rng(seed)
    boot_a, boot_b = _boot_rates(na, ca, rng, draws), _boot_rates(nb, cb, rng, draws)
    ok = (boot_a > 0) & (boot_b > 0)
    ratios = boot_a[ok] / boot_b[ok]
    low, high = np.percentile(ratios, [2.5, 97.5]) - 1
    binomial = (1 - ra) / ca.sum() + (1 - rb) / cb.sum()
    design = float(max(1.0, np.var(np.log(ratios)) / binomial)) if binomial > 0 else 1.0
    return LiftEstimate(
        metric=label or metric,
        versus=versus,
        a=ra,
        b=rb,
        lift=ra / rb - 1,
        low=float(low),
        high=float(high),
        subscriber_weeks=weeks,
        subscribers=people,
        design_effect=design,
        b_share=float(nb.sum() / weeks),
    )


def subscriber_weeks_needed(estimate: LiftEstimate, *, target: float = TARGET_LIFT) -> int | None:
    """More subscriber-weeks (both arms) to detect `target` with 80% power at 95%, or None."""
    pb = estimate.b
    if not 0 < pb < 1:
        return None
    pa = min(pb * (1 + target), 0.999)
    share_b = max(min(estimate.b_share, 0.99), 0.01)
    spread = (1 - pa) / (pa * (1 - share_b)) + (1 - pb) / (pb * share_b)
    needed = estimate.design_effect * spread * ((Z_95 + Z_POWER) / math.log1p(target)) ** 2
    return max(0, math.ceil(needed) - estimate.subscriber_weeks)


@dataclass(frozen=True)
class Verdict:
    """The plain-language conclusion; `status` is win, loss, inconclusive or unmeasured."""

    status: str
    text: str


def _pct(x: float) -> str:
    return f"{100 * x:+.1f}%"


def verdict(estimate: LiftEstimate | None, *, weeks: int, more: int | None) -> Verdict:
    """Say what the pooled lift means, in words a marketer can act on."""
    span = f"{weeks} week" + ("s" if weeks != 1 else "")
    if estimate is None:
        return Verdict(
            "unmeasured",
            "no popularity holdout was sent: set arms.popular in the campaign to measure lift",
        )
    if estimate.lift is None or estimate.low is None or estimate.high is None:
        return Verdict("unmeasured", f"not enough human clicks yet in one of the arms ({span})")
    ci = f"(95% CI {_pct(estimate.low)} to {_pct(estimate.high)})"
    if estimate.low > 0:
        text = f"personalization lifts clicks by {_pct(estimate.lift)} {ci} over {span}"
        return Verdict("win", text)
    if estimate.high < 0:
        text = f"personalization loses clicks: {_pct(estimate.lift)} {ci} over {span}"
        return Verdict("loss", text + " against the popularity holdout")
    need = (
        f"about {more:,} more subscriber-weeks needed for a 10% lift"
        if more
        else "more weeks are needed"
    )
    return Verdict(
        "inconclusive",
        f"not yet significant: {_pct(estimate.lift)} {ci} over {span}; {need}",
    )
