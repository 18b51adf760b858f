"""Write the weekly report as one self-contained HTML page (inline CSS and SVG charts)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment
from markupsafe import Markup

from newsletter.report import charts
from newsletter.report.weekly import WeeklyReport

PAGE = Path(__file__).with_name("weekly.html.j2")


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.2f}%"


def _signed(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:+.1f}%"


def _num(x: int | None) -> str:
    return "n/a" if x is None else f"{x:,}"


def _fixed(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f}"


def _charts(report: WeeklyReport, simulation: dict[str, Any] | None) -> dict[str, Markup]:
    dates = [r.scheduled_for for r in report.runs]
    out: dict[str, Markup] = {}
    if not dates:
        return out
    series = {}
    for arm in ("personalized", "popular"):
        rates = [r.arms.get(arm) for r in report.runs]
        if any(rates):
            series[arm] = (
                [s.ctr.value if s else 0.0 for s in rates],
                [s.ctr.low if s else 0.0 for s in rates],
                [s.ctr.high if s else 0.0 for s in rates],
            )
    out["ctr"] = Markup(charts.ctr_per_week(dates, series))
    c = report.cumulative
    out["lift"] = Markup(
        charts.pooled_lift(
            dates, [x["lift"] for x in c], [x["low"] for x in c], [x["high"] for x in c]
        )
    )
    out["coverage"] = Markup(charts.coverage_and_breadth(dates, report.guardrails.per_run))
    if simulation:
        weeks = [w["week"] for w in simulation["per_week"]]
        utility = {
            arm: [w["utility"].get(arm, 0.0) for w in simulation["per_week"]]
            for arm in ("personalized", "popular")
        }
        utility["oracle"] = [w["oracle"] for w in simulation["per_week"]]
        out["utility"] = Markup(charts.utility_per_week(weeks, utility))
    return out


def write_weekly_report(
    report: WeeklyReport, path: Path, *, simulation: dict[str, Any] | None = None
) -> Path:
    """Render the page to PATH (folders created); `simulation` adds the hidden-truth section."""
    environment = Environment(autoescape=True)
    lifts = [
        ("human clicks, over popular", report.lift),
        ("unfiltered (machine clicks counted), over popular", report.lift_unfiltered),
        ("site activity, over control", report.lift_control),
    ]
    html = environment.from_string(PAGE.read_text(encoding="utf-8")).render(
        r=report,
        lifts=lifts,
        charts=_charts(report, simulation),
        sim=simulation,
        g_arms=[a for a in ("personalized", "popular") if a in report.pooled],
        pct=_pct,
        signed=_signed,
        num=_num,
        fixed=_fixed,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html, encoding="utf-8")
    return path
