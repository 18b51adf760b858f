"""The `newsletter` command: thin shells that parse, call one pipeline function, and print."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console

from newsletter.config import ConfigError, Settings, load_settings

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
db_app = typer.Typer(no_args_is_help=True, help="Database schema migrations.")
import_app = typer.Typer(no_args_is_help=True, help="Import behaviour from files.")
app.add_typer(db_app, name="db")
app.add_typer(import_app, name="import")
console = Console()
err_console = Console(stderr=True)


def settings_or_exit(config: Path | None = None) -> Settings:
    """Load settings, turning a configuration error into a clear message and exit code 2."""
    try:
        return load_settings(config)
    except ConfigError as exc:
        err_console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print a user-facing error (no traceback) and return the Exit to raise."""
    err_console.print(f"[red]error:[/red] {message}")
    return typer.Exit(code)


def print_json(data: object) -> None:
    """Print machine-readable JSON on stdout (no rich markup)."""
    typer.echo(json.dumps(data, indent=2, sort_keys=False, default=str))


segment_app = typer.Typer(no_args_is_help=True, help="Segments: who a rule selects.")
app.add_typer(segment_app, name="segment")


def _when(value: str | None, option: str) -> object:
    """Parse an ISO time option (naive = UTC); a bad value exits with a clear message."""
    from datetime import datetime

    from newsletter.db import as_utc, now_utc

    if value is None:
        return now_utc()
    try:
        return as_utc(datetime.fromisoformat(value))
    except ValueError as exc:
        raise fail(f"{option} {value!r} is not an ISO time (e.g. 2026-05-04T08:00)", 2) from exc


def _plan_engine(config: Path | None) -> object:
    from newsletter.db import ensure_schema, make_engine

    engine = make_engine(settings_or_exit(config).resolved_database_url)
    ensure_schema(engine)
    return engine


@segment_app.command("preview")
def segment_preview(
    name: str,
    sample: int = typer.Option(10, help="How many subscribers to show."),
    at: str | None = typer.Option(None, help="Evaluate the rule at this time (default: now)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    config: Path | None = typer.Option(None, help="newsletter.toml to use."),
) -> None:
    """Print how many subscribers segment NAME selects, and a sample of them."""
    from newsletter.plan.planner import resolve_segment
    from newsletter.plan.segments import SegmentError
    from newsletter.store.planning import profiles
    from newsletter.store.segments import segment_ids

    engine = _plan_engine(config)
    try:
        ids = segment_ids(engine, resolve_segment(engine, name), now=_when(at, "--at"))  # type: ignore[arg-type]
    except SegmentError as exc:
        raise fail(str(exc), 2) from exc
    shown = [{"id": p.id, "email": p.email, "status": p.status, "timezone": p.timezone}
             for p in profiles(engine, ids[:sample])]  # type: ignore[arg-type]  # fmt: skip
    if as_json:
        print_json({"segment": name, "count": len(ids), "sample": shown})
        return
    console.print(f"segment [bold]{name}[/bold]: {len(ids)} subscribers")
    for row in shown:
        console.print(f"  {row['id']}  {row['email']}  {row['status']}  {row['timezone']}")


@app.command("plan")
def plan_command(
    campaign: str,
    now: str | None = typer.Option(None, help="Plan as of this time (default: now)."),
    scheduled_for: str | None = typer.Option(
        None, help="The run's scheduled time (default: --now)."
    ),
    shards: int = typer.Option(1, min=1, help="Plan in this many shards of subscribers."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    config: Path | None = typer.Option(None, help="newsletter.toml to use."),
) -> None:
    """Plan a run of CAMPAIGN and print counts by arm and by skip reason."""
    from newsletter.plan.campaigns import CampaignConfigError
    from newsletter.plan.planner import PlanError, plan_run
    from newsletter.plan.segments import SegmentError

    engine = _plan_engine(config)
    when = _when(now, "--now")
    scheduled = _when(scheduled_for, "--scheduled-for") if scheduled_for else None
    try:
        result = plan_run(engine, campaign=campaign, now=when, settings=settings_or_exit(config),  # type: ignore[arg-type]
                          scheduled_for=scheduled, shard_count=shards)  # type: ignore[arg-type]  # fmt: skip
    except (PlanError, SegmentError, CampaignConfigError) as exc:
        raise fail(str(exc), 2) from exc
    if as_json:
        print_json({"run_id": result.run_id, "new_messages": result.new_messages, **result.stats})
        return
    stats = result.stats
    console.print(f"run {result.run_id} of {campaign!r} for {result.scheduled_for.isoformat()}: "
                  f"segment {stats['segment']}, planned {stats['planned']} "
                  f"({result.new_messages} new), deferred {stats['deferred']}")  # fmt: skip
    for arm, n in stats["arms"].items():
        console.print(f"  arm {arm}: {n}")
    for reason, n in stats["skipped"].items():
        console.print(f"  skipped {reason}: {n}")


@app.command("why")
def why_command(
    subscriber: str = typer.Argument(..., help="Subscriber id, email or external key."),
    campaign: str = typer.Option(..., "--campaign", help="Campaign name."),
    at: str | None = typer.Option(None, help="Look at the run at or before this time."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    config: Path | None = typer.Option(None, help="newsletter.toml to use."),
) -> None:
    """Explain why SUBSCRIBER did (or didn't) get CAMPAIGN: arm, reason and each slot."""
    from newsletter.plan.planner import PlanError
    from newsletter.plan.segments import SegmentError
    from newsletter.plan.why import why

    engine = _plan_engine(config)
    try:
        answer = why(engine, subscriber=subscriber, campaign=campaign,
                     at=_when(at, "--at") if at else None)  # type: ignore[arg-type]  # fmt: skip
    except (PlanError, SegmentError) as exc:
        raise fail(str(exc), 2) from exc
    if as_json:
        print_json(answer.to_dict())
        return
    for line in answer.lines():
        console.print(line, markup=False)


if __name__ == "__main__":  # pragma: no cover
    app()
