"""`newsletter report`: one run, or runs pooled over weeks."""

from __future__ import annotations

from pathlib import Path

import typer

from newsletter.cli.common import (
    ConfigOption,
    _when,
    app,
    console,
    fail,
    migrated_engine,
    print_json,
    settings_or_exit,
)
from newsletter.db import Engine


@app.command("report")
def report_command(
    target: str | None = typer.Argument(
        None, help="RUN id (one run) or CAMPAIGN name (default: the newest run's campaign)."
    ),
    all_campaigns: bool = typer.Option(False, "--all", help="Report every campaign's runs."),
    since: str | None = typer.Option(None, help="Only runs scheduled at or after this date."),
    html: Path | None = typer.Option(None, "--html", help="Write the HTML report to FILE."),
    out: Path | None = typer.Option(None, "--out", help="Same as --html (older name)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (no HTML unless --html)."),
    ope: bool = typer.Option(False, "--ope", help="Add the off-policy estimate of 'popular'."),
    config: Path | None = ConfigOption,
) -> None:
    """Report runs per arm and pooled over weeks: lift with intervals, verdict, guardrails.

    Without --json the HTML goes to report.html unless --html names another file.
    """
    from newsletter.report.weekly import build_weekly_report
    from newsletter.report.weekly_html import write_weekly_report
    from newsletter.store.outcomes import newest_run_campaign, select_runs

    settings = settings_or_exit(config)
    engine = migrated_engine(settings)
    path = html or out or (None if as_json else Path("report.html"))
    if target is not None and target.isdigit():
        _single_run_report(
            engine, int(target), path=path, as_json=as_json, secret_key=settings.secret_key
        )
        return
    if target is not None and all_campaigns:
        raise fail("give a CAMPAIGN or --all, not both", 2)
    campaign = None if all_campaigns else (target or newest_run_campaign(engine))
    if campaign is None and not all_campaigns:
        raise fail("there are no runs yet: plan and send one with 'newsletter run CAMPAIGN'", 2)
    when = _when(since, "--since") if since else None
    if select_runs(engine, campaign=campaign, since=when).empty:
        known = "" if campaign is None else f" of campaign {campaign!r}"
        raise fail(f"no runs{known}{' since ' + since if since else ''}: check the name", 2)
    report = build_weekly_report(engine, campaign=campaign, since=when, ope=ope)
    if path is not None:
        write_weekly_report(report, path)
    if as_json:
        print_json({**report.as_dict(), "html": None if path is None else str(path)})
        return
    for line in report.lines():
        console.print(line, markup=False, highlight=False)
    console.print(f"wrote {path}")


def _single_run_report(
    engine: Engine, run_id: int, *, path: Path | None, as_json: bool, secret_key: str
) -> None:
    """`newsletter report RUN`: one run's rates per arm and its lift (the original report)."""
    from dataclasses import asdict

    from newsletter.report.html import build_report, write_report
    from newsletter.store.delivery import run_campaign_id
    from newsletter.store.reporting import arm_counts

    if run_campaign_id(engine, run_id=run_id) is None:
        raise fail(f"run {run_id} does not exist; list runs with `newsletter run list`", 2)
    counts = arm_counts(engine, run_id=run_id)
    report = build_report(run_id, f"Run {run_id}", counts, secret_key=secret_key)
    if path is not None:
        write_report(report, path)
    if as_json:
        print_json(
            {
                "run_id": run_id,
                "arms": [asdict(a) for a in report.arms],
                "lifts": [asdict(x) for x in report.lifts],
                "feedback_codes": report.feedback_codes,
                "html": None if path is None else str(path),
            }
        )
        return
    for line in report_lines(report):
        console.print(line, markup=False)
    for arm, code in report.feedback_codes.items():
        console.print(f"arm {arm}: Feedback-ID code {code}", markup=False)
    console.print(f"wrote {path}")


def report_lines(report: object) -> list[str]:
    """The lift lines of a report, for the terminal."""
    lines = []
    for item in getattr(report, "lifts", []):
        relative = "n/a" if item.relative is None else f"{100 * item.relative:+.1f}%"
        span = (
            ""
            if item.relative is None
            else (f" [{100 * item.relative_low:+.1f}%, {100 * item.relative_high:+.1f}%]")
        )
        lines.append(
            f"{item.metric}: personalized {100 * item.a.value:.2f}% vs popular "
            f"{100 * item.b.value:.2f}%, lift {relative}{span}"
        )
    if not getattr(report, "arms", []):
        return ["this run has no sent messages yet: nothing to measure"]
    return lines or ["no popularity holdout in this run: no lift to measure"]
