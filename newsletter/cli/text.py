"""Plain-language summaries the commands print (``--json`` prints the data itself).

Pure functions from results to lines, so the wording is tested without a terminal and the
commands in ``newsletter/cli/`` stay thin.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from newsletter.enums import RunStatus

CAP_REASONS = ("frequency_cap_day", "frequency_cap_7d", "min_gap", "frequency_monthly")


def when(value: datetime | str | None) -> str:
    """A time for people: '2026-06-01 08:00 UTC'."""
    if value is None:
        return "-"
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.strftime("%Y-%m-%d %H:%M %Z").strip() or str(value)


def import_lines(counts: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """One line per entity: rows read, new, updated (or already stored), rejected, and the
    encoding when the file was not UTF-8."""
    lines = []
    for entity, n in counts.items():
        kept = n["loaded"] - n["new"]
        again = "already stored" if entity == "interactions" else "updated"
        note = f" (not UTF-8: read as {n['encoding']})" if n.get("encoding") else ""
        lines.append(
            f"{entity}: {n['read']:,} rows read: {n['new']:,} new, {kept:,} {again}, "
            f"{n['rejected']:,} rejected{note}"
        )
    return lines


def _reasons(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{reason} {n:,}" for reason, n in counts.items())


def plan_lines(
    *,
    run_id: int,
    campaign: str,
    stats: Mapping[str, Any],
    new: int,
    holders: Mapping[int, str] | None = None,
) -> list[str]:
    """What a plan holds: segment size, planned by arm, skipped by reason, and what changed.

    ``holders`` are the other runs (id -> status) with mail for the capped subscribers.
    """
    planned, skipped = stats["planned"], sum(stats["skipped"].values())
    lines = [
        f"run {run_id} of {campaign!r}: {stats['segment']:,} subscribers in the segment; "
        f"{planned:,} planned, {skipped:,} skipped",
    ]
    if stats["arms"]:
        lines.append(f"  planned by arm: {_reasons(stats['arms'])}")
    if stats.get("deferred"):
        lines.append(f"  of which {stats['deferred']:,} wait for the end of their quiet hours")
    if skipped:
        lines.append(f"  skipped: {_reasons(stats['skipped'])}")
    if new == 0:
        lines.append("  nothing new: every subscriber of the segment was already in this run")
    elif new < planned + skipped:
        lines.append(f"  {new:,} subscribers added to the run in this pass")
    if any(r in stats["skipped"] for r in CAP_REASONS):
        lines += _holder_lines(campaign, holders or {})
    return lines


def _holder_lines(campaign: str, holders: Mapping[int, str]) -> list[str]:
    """Where the capped subscribers' mail is, and how to send it when it is not sent yet."""
    runs = ", ".join(f"run {i} ({status})" for i, status in holders.items())
    lines = [
        "  capped subscribers already have a message in "
        + (runs or "another run")
        + f": see `newsletter run list` and `newsletter why SUBSCRIBER --campaign {campaign}`"
    ]
    for run_id, status in holders.items():
        if status in (
            RunStatus.planning,
            RunStatus.planned,
            RunStatus.waiting,
            RunStatus.paused,
            RunStatus.delivering,
        ):
            lines.append(
                f"  run {run_id} is not sent yet: send it with `newsletter run resume {run_id}`"
            )
    return lines


def nothing_to_send(stats: Mapping[str, Any] | None) -> str | None:
    """Why a run can send nothing because no item fits anyone, or None when it can send."""
    if not stats or stats.get("planned") or not stats["skipped"].get("no_items"):
        return None
    n = stats["skipped"]["no_items"]
    return (
        f"nothing to send: no item could be chosen for any of the {n:,} subscribers "
        "(every active item is expired, inactive or already read by them); import newer "
        "items (newsletter import csv --items FILE) and run again"
    )


def delivery_plan_lines(
    *, run_id: int, campaign: str, stats: Mapping[str, Any], holders: Mapping[int, str]
) -> list[str]:
    """The plan part of a `run CAMPAIGN` summary (its planning pass added every message)."""
    new = sum(stats["arms"].values()) + sum(stats["skipped"].values())
    return plan_lines(run_id=run_id, campaign=campaign, stats=stats, new=new, holders=holders)


def run_list_lines(rows: list[Any]) -> list[str]:
    """A table of runs: id, campaign, scheduled time, status and messages by status."""
    if not rows:
        return [
            "no runs yet: plan one with `newsletter plan CAMPAIGN` or send one with "
            "`newsletter run CAMPAIGN`"
        ]
    lines = [f"{'run':>5}  {'campaign':<20} {'scheduled for':<21} {'status':<11} messages"]
    for r in rows:
        counts = ", ".join(f"{s} {n:,}" for s, n in r.messages.items()) or "none"
        lines.append(
            f"{r.id:>5}  {r.campaign:<20} {when(r.scheduled_for):<21} {r.status:<11} {counts}"
        )
    return lines


def demo_lines(result: Any) -> list[str]:
    """What the demo built and measured, and what to try next."""
    steps = result.steps
    data, plan, deliver = steps["data"], steps["plan"], steps["deliver"]
    feedback = steps["feedback"]
    arms = plan.get("arms") or {}
    lines = [
        f"demo ready in {result.directory}",
        f"  data: {data['subscribers']:,} subscribers, {data['items']:,} articles in "
        f"{data['topics']} topics, {data['interactions']:,} interactions",
        f"  run {plan['run']}: {arms.get('personalized', 0):,} personalized, "
        f"{arms.get('popular', 0):,} popular holdout; {deliver['by_status'].get('sent', 0):,} "
        f"emails in {deliver['outbox']}",
        f"  readers: {feedback.get('human_opens', 0):,} opened, "
        f"{feedback.get('human_clicks', 0):,} clicked ({feedback.get('machine_opens', 0):,} "
        f"machine opens and {feedback.get('machine_clicks', 0):,} scanner clicks left out)",
    ]
    sim = steps.get("simulation")
    if sim:
        lines += _simulated_weeks_lines(sim)
    lines += [
        "next (click a link in any email of the outbox while the service runs):",
        f"  export NEWSLETTER_DATABASE_URL={result.database_url}",
        "  newsletter serve --demo",
        "  newsletter run list; newsletter why 1 --campaign weekly-digest",
    ]
    return lines


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:+.0f}%"


def _simulated_weeks_lines(sim: dict[str, Any]) -> list[str]:
    """The demo's measurement: the pooled lift over the simulated weeks, and the verdict."""
    arms = sim.get("arms") or {}
    per_arm = ", ".join(
        f"{arm} {a['messages']:,} emails, CTR {100 * a['ctr']:.1f}%" for arm, a in arms.items()
    )
    low, high = sim.get("lift_ci95") or (None, None)
    return [
        f"  simulated {sim['weeks']} weekly digests to {sim['subscribers']:,} readers "
        f"(news world, {sim['database']}): {per_arm}",
        f"  pooled lift of personalization in human clicks: {_pct(sim.get('lift'))} "
        f"(95% interval {_pct(low)} to {_pct(high)})",
        f"  verdict: {sim['verdict']}",
        f"  report: {sim['html']}",
    ]
