"""`newsletter plan` and `why`: plan a run, explain one subscriber's message."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from newsletter.cli.common import (
    ConfigOption,
    ExecutorOption,
    NewRunOption,
    _executor_or_exit,
    _holders,
    _pending_schedule,
    _when,
    app,
    console,
    fail,
    migrated_engine,
    print_json,
    progress_bars,
    settings_or_exit,
)
from newsletter.cli.text import (
    nothing_to_send,
    plan_lines,
)
from newsletter.db import Engine


@app.command("plan")
def plan_command(
    campaign: str,
    now: str | None = typer.Option(None, help="Plan as of this time (default: now)."),
    scheduled_for: str | None = typer.Option(
        None,
        help="The run's scheduled time (default: the campaign's run that is not sent yet, "
        "else --now).",
    ),
    new_run: bool = NewRunOption,
    shards: int = typer.Option(1, min=1, help="Plan in this many shards of subscribers."),
    workers: int = typer.Option(1, min=1, help="Plan shards in this many local processes."),
    executor: str | None = ExecutorOption,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    config: Path | None = ConfigOption,
) -> None:
    """Plan a run of CAMPAIGN (who gets what) and print counts by arm and by skip reason."""
    from newsletter.pipeline import create_run, plan_run
    from newsletter.plan.campaigns import CampaignConfigError
    from newsletter.plan.planner import PlanError
    from newsletter.plan.segments import SegmentError
    from newsletter.tasks import ExecutorError

    settings = settings_or_exit(config)
    chosen = _executor_or_exit(executor, workers=workers, settings=settings)  # before any run
    engine = migrated_engine(settings)
    when = _when(now, "--now")
    scheduled = _when(scheduled_for, "--scheduled-for") if scheduled_for else None
    try:
        if scheduled is None and not new_run:
            scheduled = _pending_schedule(engine, campaign, verb="re-planning")
        with progress_bars() as bars:
            prepared = create_run(
                engine,
                campaign=campaign,
                now=when,
                settings=settings,
                scheduled_for=scheduled,
                shard_count=shards,
            )
            result = plan_run(
                engine,
                run_id=prepared.run_id,
                now=when,
                executor=chosen,
                settings=settings,
                progress=bars,
            )
    except (PlanError, SegmentError, CampaignConfigError, ExecutorError) as exc:
        raise fail(str(exc), 2) from exc
    _print_plan(engine, result, campaign=campaign, as_json=as_json)


def _print_plan(engine: Engine, result: Any, *, campaign: str, as_json: bool) -> None:
    """The plan's counts (or JSON); exit 1 when the run has nothing to send."""
    empty = nothing_to_send(result.stats)
    if as_json:
        print_json({"run_id": result.run_id, "new_messages": result.new_messages, **result.stats})
    else:
        lines = plan_lines(
            run_id=result.run_id,
            campaign=campaign,
            stats=result.stats,
            new=result.new_messages,
            holders=_holders(engine, result.run_id),
        )
        for line in lines:
            console.print(line, markup=False)
        if not empty:
            console.print(f"send it with `newsletter run resume {result.run_id}`", markup=False)
    if empty:
        raise fail(empty, 1)


@app.command("why")
def why_command(
    subscriber: str = typer.Argument(..., help="Subscriber id, email or external key."),
    campaign: str = typer.Option(..., "--campaign", help="Campaign name."),
    at: str | None = typer.Option(None, help="Look at the run at or before this time."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    config: Path | None = ConfigOption,
) -> None:
    """Explain why SUBSCRIBER did (or didn't) get CAMPAIGN: arm, reason and each slot."""
    from newsletter.plan.planner import PlanError
    from newsletter.plan.segments import SegmentError
    from newsletter.plan.why import why

    settings = settings_or_exit(config)
    engine = migrated_engine(settings)
    try:
        answer = why(
            engine,
            subscriber=subscriber,
            campaign=campaign,
            at=_when(at, "--at") if at else None,
            settings=settings,
        )
    except (PlanError, SegmentError) as exc:
        raise fail(str(exc), 2) from exc
    if as_json:
        print_json(answer.to_dict())
        return
    for line in answer.lines():
        console.print(line, markup=False)
