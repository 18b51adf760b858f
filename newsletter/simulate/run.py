"""``newsletter simulate``: build a world, run the loop, report it, optionally check the OPE.

:func:`run_simulation` does everything the command does and returns the summary dict that
``--json`` prints (lifts as fractions: 0.18 means +18%). With ``check_ope`` it runs the same
world and seed a second time with ``exploration_policy = "popular"`` (the popularity policy
really filling the exploration slots) and compares the off-policy estimate from the first
run's logs with the click-through that policy really got.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from newsletter.db import make_engine, upgrade
from newsletter.models import Arm
from newsletter.report.lift import wilson
from newsletter.report.weekly import WeeklyReport, build_weekly_report
from newsletter.simulate.loop import CAMPAIGN, SimulationConfig, SimulationResult, simulate

Progress = Callable[[str], None]


def _noop(_: str) -> None:
    return None


def _round(x: float | None, digits: int = 6) -> float | None:
    return None if x is None else round(float(x), digits)


def truth_summary(result: SimulationResult) -> dict[str, Any]:
    """The simulator's ground truth pooled over weeks: utility per arm, oracle, true lift."""
    arms = sorted({a for w in result.weeks for a in w.delivered})
    delivered = {a: sum(w.delivered.get(a, 0) for w in result.weeks) for a in arms}
    clicks = {a: sum(w.true_clicks.get(a, 0) for w in result.weeks) for a in arms}
    utility = {
        a: sum(w.utility.get(a, 0.0) * w.delivered.get(a, 0) for w in result.weeks)
        / max(delivered[a], 1)
        for a in arms
    }
    total = sum(delivered.values())
    oracle = sum(w.oracle * sum(w.delivered.values()) for w in result.weeks) / max(total, 1)
    ctr = {a: clicks[a] / delivered[a] if delivered[a] else 0.0 for a in arms}
    p, h = ctr.get(Arm.personalized), ctr.get(Arm.popular)
    return {
        "delivered": delivered,
        "true_human_clicks": clicks,
        "true_ctr": {a: _round(v) for a, v in ctr.items()},
        "lift_true": _round(p / h - 1) if p is not None and h else None,
        "utility": {**{a: _round(v) for a, v in utility.items()}, "oracle": _round(oracle)},
        "per_week": [
            {
                "week": w.week + 1,
                "run_id": w.run_id,
                "delivered": w.delivered,
                "true_human_clicks": w.true_clicks,
                "utility": {a: _round(v) for a, v in w.utility.items()},
                "oracle": _round(w.oracle),
            }
            for w in result.weeks
        ],
    }


def summary(result: SimulationResult, report: WeeklyReport) -> dict[str, Any]:
    """The ``simulate --json`` document: the report's pooled figures beside the truth."""
    c = result.config
    truth = truth_summary(result)
    g = report.guardrails
    lift = report.lift
    return {
        "world": c.world.world.name,
        "subscribers": c.subscribers,
        "weeks": c.weeks,
        "seed": c.seed,
        "explore": c.explore,
        "exploration_policy": c.exploration_policy,
        "arms": {
            arm: {
                "messages": s.delivered,
                "human_clicks": s.human_clicks,
                "ctr": _round(s.ctr.value),
                "human_opens": s.human_opens,
                "machine_opens": s.machine_opens,
                "any_clicks": s.any_clicks,
                "unsubscribes": s.unsubscribes,
                "bounces": s.bounces,
                "true_human_clicks": truth["true_human_clicks"].get(arm),
            }
            for arm, s in report.pooled.items()
            if arm != Arm.control
        },
        "lift": _round(lift.lift) if lift else None,
        "lift_ci95": [_round(lift.low), _round(lift.high)] if lift else None,
        "lift_unfiltered": _round(report.lift_unfiltered.lift) if report.lift_unfiltered else None,
        "lift_true": truth["lift_true"],
        "coverage": _round(g.coverage.get(Arm.personalized)),
        "coverage_popular": _round(g.coverage.get(Arm.popular)),
        "discovery": _round(g.discovery.get(Arm.personalized)),
        "explore_ctr": _round(g.explore_ctr),
        "exploit_ctr": _round(g.exploit_ctr),
        "exploit_ctr_same_positions": _round(g.exploit_ctr_same_positions),
        "utility": truth["utility"],
        "verdict": report.verdict.text,
        "per_week": truth["per_week"],
    }


def _one(
    config: SimulationConfig, folder: Path, url: str | None, progress: Progress
) -> tuple[SimulationResult, WeeklyReport, str]:
    database_url = url or f"sqlite:///{folder / 'simulation.db'}"
    engine = make_engine(database_url)
    try:
        upgrade(engine)
        result = simulate(
            engine=engine, config=config, database_url=database_url, progress=progress
        )
        report = build_weekly_report(
            engine, campaign=CAMPAIGN, ope=True, title=f"Simulation: {config.world.world.name}"
        )
    finally:
        engine.dispose()
    return result, report, database_url


def ope_check(report: WeeklyReport, actual: WeeklyReport) -> dict[str, Any]:
    """The off-policy estimate of the popular slot policy against the policy really run."""
    o = report.ope
    g = actual.guardrails
    measured = (
        wilson(round((g.explore_ctr or 0.0) * g.explore_slots), g.explore_slots)
        if g.explore_slots
        else None
    )
    estimate = None if o is None else (o.snips if o.snips is not None else o.ips)
    low = None if o is None else (o.snips_low if o.snips is not None else o.ips_low)
    high = None if o is None else (o.snips_high if o.snips is not None else o.ips_high)
    within = (
        measured is not None
        and low is not None
        and high is not None
        and low <= measured.value <= high
    )
    overlap = (
        measured is not None and estimate is not None and measured.low <= estimate <= measured.high
    )
    return {
        "policy": "popular",
        "ips": _round(o.ips) if o else None,
        "ips_ci95": [_round(o.ips_low), _round(o.ips_high)] if o else None,
        "snips": _round(o.snips) if o else None,
        "snips_ci95": [_round(o.snips_low), _round(o.snips_high)] if o else None,
        "matched_slots": o.matched if o else 0,
        "exploration_slots": o.rounds if o else 0,
        "effective_n": _round(o.effective_n, 1) if o else None,
        "measured_ctr": _round(measured.value) if measured else None,
        "measured_ci95": [_round(measured.low), _round(measured.high)] if measured else None,
        "measured_slots": g.explore_slots,
        "within": bool(within),  # the measured CTR lies in the estimate's 95% interval
        "estimate_in_measured_interval": bool(overlap),
    }


def run_simulation(
    config: SimulationConfig,
    *,
    database_url: str | None = None,
    html: Path | None = None,
    check_ope: bool = False,
    progress: Progress = _noop,
) -> dict[str, Any]:
    """Simulate, report and summarise (see the module docstring)."""
    from newsletter.report.weekly_html import write_weekly_report

    with tempfile.TemporaryDirectory(prefix="newsletter-sim-") as tmp:
        result, report, _ = _one(config, Path(tmp), database_url, progress)
        out = summary(result, report)
        if check_ope:
            progress("second simulation: the popularity policy fills the exploration slots")
            second = replace(config, exploration_policy="popular")
            folder = Path(tmp) / "ope"
            folder.mkdir()
            _, actual, _ = _one(second, folder, None, progress)
            out["ope_check"] = ope_check(report, actual)
        if html is not None:
            write_weekly_report(report, html, simulation=out)
    out["database_url"] = database_url
    return out


def _p(x: object) -> str:
    return "n/a" if x is None else f"{100 * float(x):.2f}%"  # type: ignore[arg-type]


def _s(x: object) -> str:
    return "n/a" if x is None else f"{100 * float(x):+.1f}%"  # type: ignore[arg-type]


def summary_lines(result: dict[str, Any]) -> list[str]:
    """The terminal summary of a simulation (the JSON's main figures, in words)."""
    out = [
        f"world {result['world']}: {result['subscribers']:,} subscribers, {result['weeks']} "
        f"weeks, seed {result['seed']}, exploration {_p(result['explore'])}"
    ]
    for arm, a in result["arms"].items():
        out.append(
            f"  {arm}: {a['messages']:,} messages, {a['human_clicks']:,} human clicks, CTR "
            f"{_p(a['ctr'])} (a person really clicked {a['true_human_clicks']:,})"
        )
    ci = result.get("lift_ci95") or [None, None]
    out.append(f"  lift {_s(result['lift'])} (95% CI {_s(ci[0])} to {_s(ci[1])}), pooled")
    out.append(
        f"  unfiltered lift {_s(result['lift_unfiltered'])} (machine clicks counted); true lift "
        f"{_s(result['lift_true'])} (the world's own record of person clicks)"
    )
    u = result["utility"]
    out.append(
        f"  hidden utility per slot: personalized {_p(u.get('personalized'))}, popular "
        f"{_p(u.get('popular'))}, oracle {_p(u.get('oracle'))}"
    )
    out.append(
        f"  coverage {_p(result['coverage'])} (popular {_p(result['coverage_popular'])}), "
        f"new-item discovery {_p(result['discovery'])}, exploration slot CTR "
        f"{_p(result['explore_ctr'])} vs {_p(result['exploit_ctr'])}"
    )
    out.append(f"verdict: {result['verdict']}")
    check = result.get("ope_check")
    if check:
        ci = check.get("snips_ci95") or [None, None]
        out.append(
            f"off-policy check: SNIPS estimate of the popular policy {_p(check['snips'])} "
            f"[{_p(ci[0])}, {_p(ci[1])}] vs {_p(check['measured_ctr'])} measured when it ran: "
            + ("within" if check["within"] else "outside")
        )
    return out
