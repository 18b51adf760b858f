"""Write a run's report as one self-contained HTML page: rates per arm, lift, machine events.

The page shows, per arm, the share of sent messages a person opened and clicked (Wilson 95%
intervals), the lift of `personalized` over the `popular` holdout (difference and relative,
with intervals), and how many machine opens and scanner clicks were left out. No external
assets: the chart is inline SVG.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape
from pathlib import Path

from jinja2 import Environment

from newsletter.enums import Arm
from newsletter.plan.experiments import feedback_codes
from newsletter.report.lift import Lift, Rate, lift, wilson
from newsletter.store.reporting import ArmCounts

METRICS = (("human click rate", "human_clicks"), ("human open rate", "human_opens"))


@dataclass(frozen=True)
class RunReport:
    """Everything the page shows, as plain data (also printed by the CLI)."""

    run_id: int
    title: str
    arms: list[ArmCounts]
    rates: dict[str, dict[str, Rate]]  # arm -> metric -> rate
    lifts: list[Lift]  # personalized vs popular, per metric
    feedback_codes: dict[str, str] = field(default_factory=dict)  # arm -> Feedback-ID code


def build_report(
    run_id: int, title: str, arms: list[ArmCounts], *, secret_key: str | None = None
) -> RunReport:
    """Rates per arm and the personalized-over-popular lift for each metric; with the
    install's `secret_key`, also each arm's opaque Feedback-ID code (to read FBL reports)."""
    rates = {
        a.arm: {name: wilson(getattr(a, field), a.sent) for name, field in METRICS} for a in arms
    }
    by_arm = {a.arm: a for a in arms}
    lifts = []
    if Arm.personalized in by_arm and Arm.popular in by_arm:
        p, h = by_arm["personalized"], by_arm["popular"]
        lifts = [
            lift(name, (getattr(p, f), p.sent), (getattr(h, f), h.sent)) for name, f in METRICS
        ]
    codes = {} if secret_key is None else feedback_codes(secret_key=secret_key)
    return RunReport(
        run_id=run_id,
        title=title,
        arms=arms,
        rates=rates,
        lifts=lifts,
        feedback_codes={a.arm: codes[a.arm] for a in arms if a.arm in codes},
    )


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"


PAGE = Path(__file__).with_name("report.html.j2")


def _chart(report: RunReport) -> str:
    """Inline SVG: human click rate per arm with its interval."""
    rates = [(arm, m["human click rate"]) for arm, m in report.rates.items()]
    if not rates:
        return ""
    top = max(r.high for _, r in rates) or 1.0
    bars = []
    for n, (arm, rate) in enumerate(rates):
        x, height = 80 + n * 140, 160 * rate.value / top
        low, high = 200 - 160 * rate.low / top, 200 - 160 * rate.high / top
        bars.append(
            f'<rect x="{x}" y="{200 - height:.1f}" width="70" height="{height:.1f}" '
            'fill="#4a7bd0"/>'
            f'<line x1="{x + 35}" x2="{x + 35}" y1="{low:.1f}" y2="{high:.1f}" stroke="#111"/>'
            f'<text x="{x + 35}" y="218" text-anchor="middle">{escape(arm)}</text>'
            f'<text x="{x + 35}" y="{high - 6:.1f}" text-anchor="middle">'
            f"{100 * rate.value:.1f}%</text>"
        )
    width = 120 + 140 * len(rates)
    return (
        f'<svg role="img" aria-label="human click rate per arm" width="{width}" height="230" '
        f'font-size="12">{"".join(bars)}</svg>'
    )


def write_report(report: RunReport, path: Path) -> Path:
    """Render the page to PATH (folders created)."""
    from markupsafe import Markup

    environment = Environment(autoescape=True)
    html = environment.from_string(PAGE.read_text(encoding="utf-8")).render(
        r=report, pct=_pct, chart=Markup(_chart(report))
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html, encoding="utf-8")
    return path
