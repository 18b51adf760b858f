"""Charts of the weekly report, drawn with matplotlib and returned as inline SVG text.

Every chart has a title, labelled axes with units, and a legend; figures are narrow (they
scale to the page width, so text stays readable on a 375 px phone screen). SVG ids are
salted with a fixed string, so the same report gives the same bytes.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.dates import DateFormatter

COLOURS = {"personalized": "#1f4f8f", "popular": "#c2571a", "control": "#5b8c3a", "oracle": "#555"}
plt.rcParams.update(
    {
        "svg.fonttype": "none",
        "svg.hashsalt": "newsletter-report",
        "font.size": 11,
        "axes.titlesize": 12,
        "axes.spines.top": False,
        "axes.spines.right": False,
    }
)


def to_svg(fig: Any) -> str:
    """The figure as an <svg> element that scales to its container's width."""
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    text = buffer.getvalue()
    text = text[text.find("<svg") :]
    text = re.sub(r"<metadata>.*?</metadata>", "", text, count=1, flags=re.DOTALL)
    size = r'<svg([^>]*?) width="[^"]*" height="[^"]*"'
    text = re.sub(size, r'<svg\1 class="chart"', text, count=1)
    return text.replace("<svg ", '<svg role="img" ', 1)


def _axes(title: str, ylabel: str, height: float = 3.0) -> tuple[Any, Any]:
    fig, ax = plt.subplots(figsize=(4.8, height))
    ax.set_title(title, loc="left")
    ax.set_ylabel(ylabel)
    ax.set_xlabel("week of the run")
    ax.xaxis.set_major_formatter(DateFormatter("%d %b"))
    ax.grid(axis="y", alpha=0.3)
    return fig, ax


def _ticks(ax: Any, dates: Sequence[datetime]) -> None:
    """One tick per run (at most 8 labelled), so the axis shows the weeks, not the days."""
    step = max(1, len(dates) // 8 + (len(dates) % 8 > 0))
    ax.set_xticks(list(dates)[::step])


def _finish(fig: Any, ax: Any, dates: Sequence[datetime]) -> str:
    _ticks(ax, dates)
    ax.legend(frameon=False, fontsize=9)
    fig.autofmt_xdate(rotation=30)
    return to_svg(fig)


def ctr_per_week(
    dates: Sequence[datetime], series: dict[str, tuple[list[float], list[float], list[float]]]
) -> str:
    """Human click-through per arm per week, with its 95% band (values are fractions)."""
    fig, ax = _axes("Click-through per week (95% band)", "messages clicked (%)")
    for arm, (value, low, high) in series.items():
        colour = COLOURS.get(arm, "#333")
        ax.plot(dates, [100 * v for v in value], marker="o", color=colour, label=arm)
        ax.fill_between(
            dates, [100 * v for v in low], [100 * v for v in high], color=colour, alpha=0.15
        )
    ax.set_ylim(bottom=0)
    return _finish(fig, ax, dates)


def pooled_lift(
    dates: Sequence[datetime],
    lift: list[float | None],
    low: list[float | None],
    high: list[float | None],
) -> str:
    """The pooled lift (all runs up to each week) with its 95% interval, in percent."""
    fig, ax = _axes("Pooled lift over popular, week by week", "lift of personalized (%)")
    keep = [k for k, v in enumerate(lift) if v is not None and low[k] is not None]
    xs = [dates[k] for k in keep]
    ax.axhline(0, color="#888", linewidth=1)
    ax.plot(
        xs,
        [100 * (lift[k] or 0) for k in keep],
        marker="o",
        color=COLOURS["personalized"],
        label="pooled lift",
    )
    ax.fill_between(
        xs,
        [100 * (low[k] or 0) for k in keep],
        [100 * (high[k] or 0) for k in keep],
        color=COLOURS["personalized"],
        alpha=0.15,
        label="95% interval",
    )
    return _finish(fig, ax, dates)


def coverage_and_breadth(dates: Sequence[datetime], per_run: list[dict[str, Any]]) -> str:
    """Catalogue coverage (%) and breadth (topics) per arm per week, one panel each."""
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(4.8, 5.2), sharex=True)
    top.set_title("Catalogue coverage per run", loc="left")
    top.set_ylabel("catalogue shown (%)")
    bottom.set_title("Breadth (last 4 runs)", loc="left")
    bottom.set_ylabel("topics clicked per clicker")
    bottom.set_xlabel("week of the run")
    for arm in ("personalized", "popular"):
        colour = COLOURS[arm]
        cov = [r.get(f"coverage_{arm}") for r in per_run]
        bre = [r.get(f"breadth_{arm}") for r in per_run]
        pts = [(d, 100 * v) for d, v in zip(dates, cov, strict=True) if v is not None]
        if pts:
            top.plot(*zip(*pts, strict=True), marker="o", color=colour, label=arm)
        pts = [(d, v) for d, v in zip(dates, bre, strict=True) if v is not None]
        if pts:
            bottom.plot(*zip(*pts, strict=True), marker="o", color=colour, label=arm)
    for ax in (top, bottom):
        ax.grid(axis="y", alpha=0.3)
        ax.set_ylim(bottom=0)
        ax.legend(frameon=False, fontsize=9)
    bottom.xaxis.set_major_formatter(DateFormatter("%d %b"))
    _ticks(bottom, dates)
    fig.autofmt_xdate(rotation=30)
    return to_svg(fig)


def utility_per_week(weeks: list[int], utility: dict[str, list[float]]) -> str:
    """The simulator's ground truth: mean hidden utility per sent slot, per arm and oracle."""
    fig, ax = plt.subplots(figsize=(4.8, 3.0))
    ax.set_title("Hidden utility of what was sent", loc="left")
    ax.set_ylabel("click chance of a slot (%)")
    ax.set_xlabel("simulated week")
    for name, values in utility.items():
        style = "--" if name == "oracle" else "-"
        ax.plot(
            weeks,
            [100 * v for v in values],
            style,
            marker="o",
            color=COLOURS.get(name, "#333"),
            label=name,
        )
    ax.set_ylim(bottom=0)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(frameon=False, fontsize=9)
    return to_svg(fig)
