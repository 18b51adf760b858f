"""The report over weeks: per run and pooled, lift with intervals, a verdict, guardrails, OPE.

``build_weekly_report(engine, campaign=..., since=..., ope=...)`` reads the runs through
``store.outcomes`` and returns a :class:`WeeklyReport`; ``as_dict()`` is the ``--json``
output, ``lines()`` the terminal summary, and ``newsletter.report.weekly_html`` renders it.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from newsletter.db import Engine
from newsletter.models import Arm
from newsletter.report.guardrails import Guardrails, guardrails
from newsletter.report.ope import OffPolicy, evaluate_popular
from newsletter.report.pooled import (
    ArmSummary,
    LiftEstimate,
    Verdict,
    arm_summaries,
    lift_estimate,
    subscriber_weeks_needed,
    verdict,
)
from newsletter.store import outcomes as store

SERIES_DRAWS = 400
DEFINITIONS = {
    "delivered": "messages the mail server accepted (status sent)",
    "human opens": "delivered messages a person opened: a pixel fetch by a mail client, or any "
    "human click (a click proves an open even when images are off or proxied)",
    "machine opens": "delivered messages opened only by machines: Apple Mail Privacy Protection "
    "prefetches every pixel on delivery, security gateways fetch images too",
    "human clicks": "delivered messages with at least one click by a person (unique per message)",
    "click-through (CTR)": "human clicks / delivered, with a 95% Wilson interval",
    "click-to-open": "human clicks / human opens",
    "unsubscribes": "delivered messages followed by an unsubscribe from their link",
    "bounces": "messages the receiving server refused permanently",
    "complaints": "spam reports received from the mail provider",
    "lift": "CTR(personalized) / CTR(popular holdout) - 1; pooled over every run shown, 95% "
    "interval from a bootstrap over subscribers (all of a subscriber's weeks together)",
    "unfiltered lift": "the same lift counting machine clicks as clicks",
    "lift over control": "share of subscribers active on the site in the week after a run, "
    "personalized against the no-email control arm",
    "machine filter": "clicks by link scanners and bots (named user agents, Office link "
    "preflight, clicks within 10 s of delivery) and machine opens are kept but not counted",
}
FILTER_NOTE = (
    "Scanners follow every link of a message whatever it shows, so the same machine 'clicks' "
    "land in both arms and pull the unfiltered lift towards zero (and inflate both CTRs). A "
    "scanner that sends a browser's user agent and waits more than 10 seconds cannot be told "
    "from a person, so some machine clicks remain in the filtered figures too."
)


@dataclass
class RunRow:
    """One run: counts per arm and its own (noisy) lift."""

    run_id: int
    campaign: str
    scheduled_for: datetime
    arms: dict[str, ArmSummary]
    lift: LiftEstimate | None
    lift_unfiltered: LiftEstimate | None


@dataclass
class WeeklyReport:
    """Everything the report shows (see the module docstring)."""

    title: str
    campaigns: list[str]
    runs: list[RunRow]
    pooled: dict[str, ArmSummary]
    lift: LiftEstimate | None
    lift_unfiltered: LiftEstimate | None
    lift_control: LiftEstimate | None
    verdict: Verdict
    more_needed: int | None
    guardrails: Guardrails
    cumulative: list[dict[str, Any]] = field(default_factory=list)
    ope: OffPolicy | None = None
    definitions: dict[str, str] = field(default_factory=lambda: dict(DEFINITIONS))
    filter_note: str = FILTER_NOTE

    def as_dict(self) -> dict[str, Any]:
        """Plain data for ``--json`` (lifts as fractions: 0.18 means +18%)."""

        def lift(x: LiftEstimate | None) -> dict[str, Any] | None:
            return None if x is None else asdict(x)

        return {
            "title": self.title,
            "campaigns": self.campaigns,
            "weeks": len(self.runs),
            "pooled": {
                "arms": {a: s.as_dict() for a, s in self.pooled.items()},
                "lift": lift(self.lift),
                "lift_unfiltered": lift(self.lift_unfiltered),
                "lift_control": lift(self.lift_control),
                "subscriber_weeks_needed_for_10pct": self.more_needed,
            },
            "verdict": asdict(self.verdict),
            "runs": [
                {
                    "run_id": r.run_id,
                    "campaign": r.campaign,
                    "scheduled_for": r.scheduled_for.isoformat(),
                    "arms": {a: s.as_dict() for a, s in r.arms.items()},
                    "lift": lift(r.lift),
                    "lift_unfiltered": lift(r.lift_unfiltered),
                }
                for r in self.runs
            ],
            "cumulative_lift": [
                {**c, "scheduled_for": c["scheduled_for"].isoformat()} for c in self.cumulative
            ],
            "guardrails": {
                k: v for k, v in asdict(self.guardrails).items() if k not in ("per_run",)
            },
            "ope": None if self.ope is None else asdict(self.ope),
            "definitions": self.definitions,
            "filter_note": self.filter_note,
        }

    def lines(self) -> list[str]:
        """A terminal summary: verdict, pooled arms, lifts, guardrails, warnings."""
        out = [f"{self.title}: {len(self.runs)} run(s)", f"verdict: {self.verdict.text}"]
        for arm, s in self.pooled.items():
            if arm == Arm.control:
                out.append(f"  control: {s.members} held out, {s.site_active} active on site")
                continue
            out.append(
                f"  {arm}: delivered {s.delivered}, human opens {s.human_opens} (machine-only "
                f"{s.machine_opens}), human clicks {s.human_clicks}, CTR "
                f"{100 * s.ctr.value:.2f}% [{100 * s.ctr.low:.2f}, {100 * s.ctr.high:.2f}], "
                f"unsubscribes {s.unsubscribes}, bounces {s.bounces}, complaints {s.complaints}"
            )
        for name, x in (
            ("unfiltered lift", self.lift_unfiltered),
            ("over control", self.lift_control),
        ):
            if x is not None and x.lift is not None:
                low, high = 100 * (x.low or 0), 100 * (x.high or 0)
                out.append(f"  {name}: {100 * x.lift:+.1f}% [{low:+.1f}, {high:+.1f}]")
        g = self.guardrails
        if g.explore_ctr is not None and g.exploit_ctr is not None:
            out.append(
                f"  exploration slot CTR {100 * g.explore_ctr:.2f}% vs exploitation "
                f"{100 * g.exploit_ctr:.2f}%"
            )
        for arm in g.coverage:
            out.append(
                f"  {arm}: coverage {_share(g.coverage.get(arm))}, new-item discovery "
                f"{_share(g.discovery.get(arm))}, breadth {_num(g.breadth.get(arm))} topics"
            )
        if self.ope is not None and self.ope.snips is not None:
            o = self.ope
            out.append(
                f"  off-policy ({o.policy}): IPS {100 * (o.ips or 0):.2f}% "
                f"[{100 * (o.ips_low or 0):.2f}, {100 * (o.ips_high or 0):.2f}], SNIPS "
                f"{100 * (o.snips or 0):.2f}% [{100 * (o.snips_low or 0):.2f}, "
                f"{100 * (o.snips_high or 0):.2f}] from {o.matched} of {o.rounds} slots"
            )
        out.extend(f"warning: {w}" for w in g.warnings)
        return out


def _share(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _num(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f}"


def _cumulative(messages: pd.DataFrame, runs: pd.DataFrame) -> list[dict[str, Any]]:
    out = []
    for k in range(len(runs)):
        upto = runs["run_id"].iloc[: k + 1].tolist()
        est = lift_estimate(
            messages[messages["run_id"].isin(upto)], metric="human_click", draws=SERIES_DRAWS
        )
        out.append(
            {
                "run_id": int(runs["run_id"].iloc[k]),
                "scheduled_for": runs["scheduled_for"].iloc[k].to_pydatetime(),
                "lift": None if est is None else est.lift,
                "low": None if est is None else est.low,
                "high": None if est is None else est.high,
            }
        )
    return out


def _run_list(runs: pd.DataFrame) -> list[tuple[int, str, datetime]]:
    """(run id, campaign, scheduled_for) per run, as plain Python values."""
    return [
        (int(r), str(c), pd.Timestamp(w).to_pydatetime())
        for r, c, w in zip(runs["run_id"], runs["campaign"], runs["scheduled_for"], strict=True)
    ]


def _run_rows(messages: pd.DataFrame, runs: pd.DataFrame) -> list[RunRow]:
    rows = []
    for run_id, campaign, when in _run_list(runs):
        mine = messages[messages["run_id"] == run_id]
        rows.append(
            RunRow(
                run_id=run_id,
                campaign=campaign,
                scheduled_for=when,
                arms=arm_summaries(mine) if len(mine) else {},
                lift=lift_estimate(mine, metric="human_click", draws=SERIES_DRAWS),
                lift_unfiltered=lift_estimate(mine, metric="any_click", draws=SERIES_DRAWS),
            )
        )
    return rows


def _consumed(engine: Engine, runs: pd.DataFrame):
    when = {run_id: at for run_id, _, at in _run_list(runs)}

    def consumed(subscribers: list[int], items: list[int], run_id: int) -> set[tuple[int, int]]:
        before = when[run_id]
        return store.prior_consumption(engine, subscribers=subscribers, items=items, before=before)

    return consumed


def _control_lift(
    engine: Engine, messages: pd.DataFrame, runs: pd.DataFrame
) -> LiftEstimate | None:
    """Site activity, personalized over control, on runs whose following week is known."""
    known = store.latest_behaviour(engine)
    if known is None or Arm.control not in set(messages["arm"]):
        return None
    margin = timedelta(days=1)  # behaviour is synced in batches: allow the last day
    done = [r for r, _, when in _run_list(runs) if when + store.SITE_WINDOW - margin <= known]
    rows = messages[messages["run_id"].isin(done)]
    return lift_estimate(rows, metric="site_active", versus=Arm.control) if len(rows) else None


def build_weekly_report(
    engine: Engine,
    *,
    campaign: str | None,
    since: datetime | None = None,
    ope: bool = False,
    title: str | None = None,
) -> WeeklyReport:
    """The report of `campaign`'s runs (every campaign's when None) since `since`.

    The bootstrap intervals (each seeded on its own, so the figures do not depend on the
    order they are computed in) run in a second thread while this one reads the slots, the
    items and the engagement windows from the database.
    """
    runs = store.select_runs(engine, campaign=campaign, since=since)
    ids = runs["run_id"].tolist()
    messages = store.message_outcomes(engine, run_ids=ids)
    runs = runs[runs["run_id"].isin(messages["run_id"].unique())].reset_index(drop=True)
    with ThreadPoolExecutor(1, thread_name_prefix="report-bootstrap") as pool:
        pooled_lift = pool.submit(lift_estimate, messages, metric="human_click")
        unfiltered = pool.submit(lift_estimate, messages, metric="any_click", label="any_click")
        run_rows = pool.submit(_run_rows, messages, runs)
        cumulative = pool.submit(_cumulative, messages, runs)
        slots = store.slot_outcomes(engine, run_ids=ids)
        items = store.item_facts(engine)
        engaged = store.engaged_items(
            engine,
            windows={r: (when - timedelta(days=28), when) for r, _, when in _run_list(runs)},
        )
        control = _control_lift(engine, messages, runs)
        off_policy = evaluate_popular(slots, consumed=_consumed(engine, runs)) if ope else None
        lift = pooled_lift.result()
    more = subscriber_weeks_needed(lift) if lift is not None and lift.lift is not None else None
    weeks = int(runs["scheduled_for"].dt.normalize().nunique()) if len(runs) else 0
    return WeeklyReport(
        title=title or (f"Campaign {campaign}" if campaign else "All campaigns"),
        campaigns=sorted(runs["campaign"].unique().tolist()),
        runs=run_rows.result(),
        pooled=arm_summaries(messages) if len(messages) else {},
        lift=lift,
        lift_unfiltered=unfiltered.result(),
        lift_control=control,
        verdict=verdict(lift, weeks=weeks, more=more),
        more_needed=more,
        guardrails=guardrails(
            runs=runs, messages=messages, slots=slots, items=items, engaged=engaged
        ),
        cumulative=cumulative.result(),
        ope=off_policy,
    )
