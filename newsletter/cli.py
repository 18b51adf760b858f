"""The `newsletter` command: thin shells that parse, call one pipeline function, and print."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import typer
from rich.console import Console
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from newsletter.config import ConfigError, Settings, load_settings

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
db_app = typer.Typer(no_args_is_help=True, help="Database schema migrations.")
import_app = typer.Typer(no_args_is_help=True, help="Import behaviour from files.")
app.add_typer(db_app, name="db")
app.add_typer(import_app, name="import")
console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)


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


ConfigOption = typer.Option(None, "--config", help="newsletter.toml to use.")
ExecutorOption = typer.Option(
    None, "--executor", help="in-process, process or celery (default: the config's executor)."
)


def migrated_engine(settings: Settings) -> Engine:
    """The configured database, migrated to the newest schema."""
    from newsletter.db import ensure_schema, make_engine

    engine = make_engine(settings.resolved_database_url)
    try:
        ensure_schema(engine)
    except OperationalError as exc:
        raise fail(f"cannot open database {engine.url!r}: {exc.orig}") from exc
    return engine


@db_app.command("upgrade")
def db_upgrade(revision: str = "head", config: Path | None = ConfigOption) -> None:
    """Apply schema migrations up to REVISION (default: the newest)."""
    from newsletter.db import current_revision, make_engine, upgrade

    engine = make_engine(settings_or_exit(config).resolved_database_url)
    upgrade(engine, revision)
    console.print(f"database {engine.url!r} at revision {current_revision(engine)}")


@db_app.command("downgrade")
def db_downgrade(revision: str, config: Path | None = ConfigOption) -> None:
    """Revert schema migrations down to REVISION ('base' removes every table)."""
    from newsletter.db import current_revision, downgrade, make_engine

    engine = make_engine(settings_or_exit(config).resolved_database_url)
    downgrade(engine, revision)
    console.print(f"database {engine.url!r} at revision {current_revision(engine) or 'base'}")


@db_app.command("current")
def db_current(config: Path | None = ConfigOption) -> None:
    """Print the schema revision of the database and the newest one available."""
    from newsletter.db import current_revision, head_revision, make_engine

    engine = make_engine(settings_or_exit(config).resolved_database_url)
    console.print(f"current: {current_revision(engine) or 'base'}; newest: {head_revision(engine)}")


@app.command("stats")
def stats_command(
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    config: Path | None = ConfigOption,
) -> None:
    """Count subscribers, items and interactions in the configured database."""
    from newsletter.store.queries import count_rows

    counts = count_rows(migrated_engine(settings_or_exit(config)))
    if as_json:
        print_json(counts)
        return
    for name, value in counts.items():
        console.print(f"{name:>13}: {value:,}")


@import_app.command("movielens")
def import_movielens_command(directory: Path, config: Path | None = ConfigOption) -> None:
    """Import a MovieLens folder (ratings.csv, movies.csv, tags.csv)."""
    from newsletter.db import now_utc
    from newsletter.store.movielens import MovieLensError, import_movielens
    from newsletter.store.queries import count_rows

    engine = migrated_engine(settings_or_exit(config))
    with console.status(f"importing {directory} ..."):
        try:
            offered = import_movielens(engine, directory, now=now_utc())
        except MovieLensError as exc:
            raise fail(str(exc), 2) from exc
    console.print(f"read {offered}; database now holds {count_rows(engine)}")


@import_app.command("csv")
def import_csv_command(
    subscribers: Path | None = typer.Option(None, help="Subscribers CSV file."),
    items: Path | None = typer.Option(None, help="Items CSV file."),
    interactions: Path | None = typer.Option(None, help="Interactions CSV file."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    config: Path | None = ConfigOption,
) -> None:
    """Import subscriber, item and interaction CSV files; bad rows are listed, good rows load."""
    from newsletter.db import now_utc
    from newsletter.store.csv_import import import_csv
    from newsletter.store.records import RowError

    if not (subscribers or items or interactions):
        raise fail("give at least one of --subscribers, --items, --interactions", 2)
    for path in (subscribers, items, interactions):
        if path is not None and not path.is_file():
            raise fail(f"{path}: no such file", 2)
    settings = settings_or_exit(config)
    engine = migrated_engine(settings)
    try:
        report = import_csv(
            engine,
            subscribers=subscribers,
            items=items,
            interactions=interactions,
            now=now_utc(),
            default_timezone=settings.default_timezone,
        )
    except RowError as exc:
        raise fail(str(exc), 2) from exc
    if as_json:
        print_json({**report.as_dict(), "rejected": [str(r) for r in report.rejected]})
    else:
        for entity, numbers in report.as_dict().items():
            console.print(
                f"{entity}: {numbers['loaded']} loaded of {numbers['read']} read, "
                f"{numbers['rejected']} rejected"
            )
        for row in report.rejected:
            err_console.print(f"[yellow]rejected[/yellow] {row}", markup=True, highlight=False)
    if report.rejected:
        raise typer.Exit(1)


campaign_app = typer.Typer(no_args_is_help=True, help="Campaigns: what to send to whom and when.")
app.add_typer(campaign_app, name="campaign")


@campaign_app.command("add")
def campaign_add(
    name: str,
    template: str = typer.Option("digest", help="Template name (shipped or saved)."),
    segment: str = typer.Option("everyone", help="Segment name (segments/*.yaml or saved)."),
    kind: str = typer.Option("digest", help="digest (on a schedule) or trigger (on behaviour)."),
    schedule: str | None = typer.Option(None, help="Cron expression for digests."),
    config_file: Path | None = typer.Option(
        None, "--campaign-config", help="JSON or YAML file with the campaign's settings."
    ),
    config: Path | None = ConfigOption,
) -> None:
    """Create campaign NAME, or update it if it exists."""
    import yaml

    from newsletter.db import now_utc
    from newsletter.plan.campaigns import CampaignConfigError, parse_campaign_config
    from newsletter.store.campaigns import upsert_campaign

    if kind not in {"digest", "trigger"}:
        raise fail(f"--kind {kind!r}: expected digest or trigger", 2)
    raw: dict[str, object] = {}
    if config_file is not None:
        try:
            raw = yaml.safe_load(config_file.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise fail(f"{config_file}: cannot read campaign settings: {exc}", 2) from exc
        if not isinstance(raw, dict):
            raise fail(f"{config_file}: expected a mapping of settings", 2)
    try:
        parse_campaign_config(raw, campaign=name)
    except CampaignConfigError as exc:
        raise fail(str(exc), 2) from exc
    engine = migrated_engine(settings_or_exit(config))
    campaign = upsert_campaign(
        engine,
        name=name,
        template_name=template,
        segment_name=segment,
        kind=kind,
        schedule=schedule,
        config=raw,
        now=now_utc(),
    )
    console.print(
        f"campaign {campaign.name!r} (id {campaign.id}): {kind}, template "
        f"{template!r}, segment {segment!r}"
    )


@campaign_app.command("list")
def campaign_list(config: Path | None = ConfigOption) -> None:
    """List the campaigns."""
    from newsletter.store.campaigns import list_campaigns

    for c in list_campaigns(migrated_engine(settings_or_exit(config))):
        console.print(
            f"{c.id:>4}  {c.name:<24} {c.kind:<8} template={c.template_name} "
            f"segment={c.segment_name} schedule={c.schedule or '-'}"
        )


@app.command("report")
def report_command(
    run: int | None = typer.Argument(None, help="Run id (default: the newest run)."),
    out: Path = typer.Option(Path("report.html"), help="Where to write the HTML report."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a summary."),
    config: Path | None = ConfigOption,
) -> None:
    """Report a run: human open and click rates per arm, and the lift over the holdout."""
    from dataclasses import asdict

    from newsletter.report.html import build_report, write_report
    from newsletter.store.reporting import arm_counts, latest_run_id

    engine = migrated_engine(settings_or_exit(config))
    run_id = run if run is not None else latest_run_id(engine)
    if run_id is None:
        raise fail("there are no runs yet: plan and send one with 'newsletter run CAMPAIGN'", 2)
    report = build_report(run_id, f"Run {run_id}", arm_counts(engine, run_id=run_id))
    write_report(report, out)
    if as_json:
        print_json(
            {
                "run_id": run_id,
                "arms": [asdict(a) for a in report.arms],
                "lifts": [asdict(x) for x in report.lifts],
                "html": str(out),
            }
        )
        return
    for line in report_lines(report):
        console.print(line, markup=False)
    console.print(f"wrote {out}")


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


@app.command("demo")
def demo_command(
    directory: Path = typer.Option(Path("newsletter-demo"), "--dir", help="Folder to build in."),
    subscribers: int = typer.Option(2000, min=1, help="Synthetic subscribers."),
    items: int = typer.Option(400, min=1, help="Synthetic articles."),
    interactions: int = typer.Option(40000, min=0, help="Synthetic interactions."),
    seed: int = typer.Option(7, help="Random seed (same seed, same demo)."),
) -> None:
    """Build a demo database from a synthetic publisher and run the pipeline on it."""
    from newsletter.db import now_utc
    from newsletter.demo import run_demo

    result = run_demo(
        directory=directory,
        now=now_utc(),
        subscribers=subscribers,
        items=items,
        interactions=interactions,
        seed=seed,
        progress=lambda line: console.print(f"[dim]·[/dim] {line}"),
    )
    console.print(f"[bold]demo ready[/bold] in {result.directory} ({result.database_url})")
    for step, summary in result.steps.items():
        console.print(f"  {step}: {summary}")
    console.print(f"try: NEWSLETTER_DATABASE_URL={result.database_url} newsletter stats")


@app.command("sync")
def sync_command(
    source: list[str] = typer.Option(None, help="Source name(s) from [sources.*]; default: all."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    config: Path | None = ConfigOption,
) -> None:
    """Pull new subscribers, items and interactions from the configured external databases."""
    from newsletter.db import now_utc
    from newsletter.store.sync import SyncError, sync_source

    settings = settings_or_exit(config)
    names = source or sorted(settings.sources)
    unknown = [n for n in names if n not in settings.sources]
    if not names or unknown:
        known = ", ".join(sorted(settings.sources)) or "none configured"
        raise fail(f"unknown source(s) {', '.join(unknown) or '(none given)'}; known: {known}", 2)
    engine = migrated_engine(settings)
    summary: dict[str, object] = {}
    for name in names:
        try:
            reports = sync_source(
                engine,
                name=name,
                source=settings.sources[name],
                now=now_utc(),
                default_timezone=settings.default_timezone,
            )
        except SyncError as exc:
            raise fail(str(exc), 2) from exc
        summary[name] = {
            r.entity: {
                "fetched": r.fetched,
                "loaded": r.loaded,
                "rejected": [str(x) for x in r.rejected],
                "watermark": r.watermark,
            }
            for r in reports
        }
    if as_json:
        print_json(summary)
        return
    for name, entities in summary.items():
        for entity, numbers in entities.items():  # type: ignore[attr-defined]
            console.print(
                f"{name}.{entity}: fetched {numbers['fetched']}, loaded "
                f"{numbers['loaded']}, rejected {len(numbers['rejected'])}, "
                f"watermark {numbers['watermark']}"
            )


segment_app = typer.Typer(no_args_is_help=True, help="Segments: who a rule selects.")
app.add_typer(segment_app, name="segment")


def _when(value: str | None, option: str) -> datetime:
    """Parse an ISO time option (naive = UTC); a bad value exits with a clear message."""
    from datetime import datetime

    from newsletter.db import as_utc, now_utc

    if value is None:
        return now_utc()
    try:
        return as_utc(datetime.fromisoformat(value))
    except ValueError as exc:
        raise fail(f"{option} {value!r} is not an ISO time (e.g. 2026-05-04T08:00)", 2) from exc


@segment_app.command("preview")
def segment_preview(
    name: str,
    sample: int = typer.Option(10, help="How many subscribers to show."),
    at: str | None = typer.Option(None, help="Evaluate the rule at this time (default: now)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    config: Path | None = ConfigOption,
) -> None:
    """Print how many subscribers segment NAME selects, and a sample of them."""
    from newsletter.plan.planner import resolve_segment
    from newsletter.plan.segments import SegmentError
    from newsletter.store.planning import profiles
    from newsletter.store.segments import segment_ids

    engine = migrated_engine(settings_or_exit(config))
    try:
        ids = segment_ids(engine, resolve_segment(engine, name), now=_when(at, "--at"))  # type: ignore[arg-type]
    except SegmentError as exc:
        raise fail(str(exc), 2) from exc
    shown = [
        {"id": p.id, "email": p.email, "status": p.status, "timezone": p.timezone}
        for p in profiles(engine, ids[:sample])
    ]  # type: ignore[arg-type]
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
    workers: int = typer.Option(1, min=1, help="Plan shards in this many local processes."),
    executor: str | None = ExecutorOption,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    config: Path | None = ConfigOption,
) -> None:
    """Plan a run of CAMPAIGN and print counts by arm and by skip reason."""
    from newsletter.pipeline import create_run, plan_run
    from newsletter.plan.campaigns import CampaignConfigError
    from newsletter.plan.planner import PlanError
    from newsletter.plan.segments import SegmentError
    from newsletter.tasks import ExecutorError, executor_named

    settings = settings_or_exit(config)
    engine = migrated_engine(settings)
    when = _when(now, "--now")
    scheduled = _when(scheduled_for, "--scheduled-for") if scheduled_for else None
    try:
        chosen = executor_named(executor, workers=workers, settings=settings)
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
        )
    except (PlanError, SegmentError, CampaignConfigError, ExecutorError) as exc:
        raise fail(str(exc), 2) from exc
    if as_json:
        print_json({"run_id": result.run_id, "new_messages": result.new_messages, **result.stats})
        return
    stats = result.stats
    console.print(
        f"run {result.run_id} of {campaign!r} for {result.scheduled_for.isoformat()}: "
        f"segment {stats['segment']}, planned {stats['planned']} "
        f"({result.new_messages} new), deferred {stats['deferred']}"
    )
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
    config: Path | None = ConfigOption,
) -> None:
    """Explain why SUBSCRIBER did (or didn't) get CAMPAIGN: arm, reason and each slot."""
    from newsletter.plan.planner import PlanError
    from newsletter.plan.segments import SegmentError
    from newsletter.plan.why import why

    engine = migrated_engine(settings_or_exit(config))
    try:
        answer = why(
            engine, subscriber=subscriber, campaign=campaign, at=_when(at, "--at") if at else None
        )
    except (PlanError, SegmentError) as exc:
        raise fail(str(exc), 2) from exc
    if as_json:
        print_json(answer.to_dict())
        return
    for line in answer.lines():
        console.print(line, markup=False)


@app.command("preview")
def preview_command(
    template: str = typer.Argument(..., help="Template name (database or shipped) or folder."),
    subscriber: int | None = typer.Option(None, help="Render for this subscriber id."),
    out: Path | None = typer.Option(None, help="Write the HTML part to this .html file."),
    eml: Path | None = typer.Option(None, help="Write the whole message to this .eml file."),
    config: Path | None = ConfigOption,
) -> None:
    """Render TEMPLATE strictly on real data (fixture data on an empty database)."""
    from newsletter.db import now_utc
    from newsletter.render.compile import CompileError
    from newsletter.render.preview import PreviewError, preview, preview_engine
    from newsletter.render.sandbox import RenderError

    settings = settings_or_exit(config)
    engine = preview_engine(settings)
    try:
        result = preview(
            template, settings=settings, engine=engine, subscriber=subscriber, now=now_utc()
        )
    except (PreviewError, CompileError, RenderError) as exc:
        raise fail(str(exc), 2) from exc
    rendered = result.rendered
    if out:
        out.write_text(rendered.html, encoding="utf-8")
    if eml:
        eml.write_bytes(rendered.bytes)
    console.print(f"[bold]{rendered.subject}[/bold]  ({result.data_source} data)")
    console.print(f"  preheader: {rendered.preheader}")
    console.print(
        f"  to: {rendered.recipient}; {len(rendered.bytes) / 1000:.1f} KB; "
        f"text part {len(rendered.text)} characters"
    )
    for path in (out, eml):
        if path:
            console.print(f"  wrote {path}")
    for warning in result.warnings:
        err_console.print(f"[yellow]warning:[/yellow] {warning}")


@app.command()
def evaluate(
    data: Path = typer.Option(..., "--data", help="MovieLens-format folder (ratings.csv, ...)."),
    protocol: str = typer.Option("temporal-20", help="temporal-20 or cold-items."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    no_tune: bool = typer.Option(False, "--no-tune", help="Use shipped defaults, skip tuning."),
) -> None:
    """Offline evaluation of the recommenders on a MovieLens folder (no database needed)."""
    from rich.table import Table

    from newsletter.recommend.evaluate import DataError
    from newsletter.recommend.evaluate import evaluate as run_evaluation

    try:
        result = run_evaluation(data_dir=data, protocol=protocol, tuned=not no_tune)
    except DataError as exc:
        raise fail(str(exc), 2) from exc
    if as_json:
        print_json(result)
        return
    metrics = ("ndcg@10", "recall@10", "map@10", "coverage", "diversity")
    table = Table(title=f"{result['protocol']}: {result['users']} users")
    table.add_column("model")
    for metric in metrics:
        table.add_column(metric, justify="right")
    for name, row in result["models"].items():
        table.add_row(name, *(f"{row[m]:.4f}" for m in metrics))
    console.print(table)


RUN_FORMS = ("resume", "retry-failed")


def _print_run(summary: object, *, as_json: bool, heading: str) -> None:
    """Final counts of a run, read back from the database: by status, skip and fail reason."""
    data = summary.as_dict()  # type: ignore[attr-defined]
    if as_json:
        print_json(data)
        return
    this = data["this_pass"]
    console.print(
        f"{heading}: sent {this['sent']}, failed {this['failed']}, skipped "
        f"{this['skipped']} in this pass ({this['retried']} retries, "
        f"{this['reconciled']} settled)"
    )
    console.print(f"run {data['run_id']} by status:")
    for status, n in data["by_status"].items():
        console.print(f"  {status}: {n}")
    for kind in ("skipped", "failed"):
        for reason, n in data[kind].items():
            console.print(f"  {kind} {reason}: {n}")
    waiting = data.get("waiting") or {}
    if waiting.get("count"):
        console.print(
            f"{waiting['count']} messages wait for their subscribers' local send time "
            f"(the first at {waiting['next_send']}): run `newsletter run resume "
            f"{data['run_id']}` then, or use --send-all"
        )


@app.command("run")
def run_command(
    target: str = typer.Argument(..., help="CAMPAIGN, or `resume` / `retry-failed` / `list`."),
    run_id: int | None = typer.Argument(None, help="RUN id (with resume / retry-failed)."),
    now: str | None = typer.Option(None, help="Run as of this time (default: now)."),
    transport: str | None = typer.Option(
        None, help="smtp://host:port, smtps://…, outbox:DIR or memory: (default: smtp_url)."
    ),
    shards: int = typer.Option(1, min=1, help="Plan and deliver in this many shards."),
    workers: int = typer.Option(1, min=1, help="Plan and deliver shards in this many processes."),
    executor: str | None = ExecutorOption,
    on_unknown: str | None = typer.Option(
        None, help="After a crash, messages caught mid-send: resend (default) or fail."
    ),
    include_unknown: bool = typer.Option(
        False, help="retry-failed: also re-send messages whose outcome was unknown."
    ),
    send_all: bool = typer.Option(
        False,
        "--send-all",
        help="Send every planned message now, even those whose local send time has not come "
        "(by default they wait for it: run `newsletter run resume RUN` later).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    config: Path | None = ConfigOption,
) -> None:
    """Plan, render and deliver CAMPAIGN; or `run resume RUN`; or `run retry-failed RUN`;
    or `run list [RUN]` (runs and the progress of their shards)."""
    from typing import Any

    from newsletter.deliver.dispatch import DeliveryError
    from newsletter.deliver.policy import DeliveryPolicy
    from newsletter.deliver.transport import TransportConfigError
    from newsletter.pipeline import resume_run, retry_failed_run, run_campaign
    from newsletter.plan.campaigns import CampaignConfigError
    from newsletter.plan.planner import PlanError
    from newsletter.plan.segments import SegmentError
    from newsletter.progress import RichProgress
    from newsletter.tasks import ExecutorError, executor_named

    if target == "list":
        from newsletter.cli_worker import run_list

        return run_list(run_id=run_id, limit=20, as_json=as_json, config=config)
    if (target in RUN_FORMS) != (run_id is not None):
        raise fail("usage: newsletter run CAMPAIGN | run resume RUN | run retry-failed RUN", 2)
    if on_unknown not in (None, "resend", "fail"):
        raise fail(f"--on-unknown {on_unknown!r}: use resend or fail", 2)
    settings = settings_or_exit(config)
    engine = migrated_engine(settings)
    when = _when(now, "--now")
    changes: dict[str, Any] = {"honour_send_time": not send_all, "live_clock": now is None}
    if on_unknown is not None:
        changes["on_unknown"] = on_unknown
    try:
        common: dict[str, Any] = {
            "now": when,
            "settings": settings,
            "transport_url": transport,
            "policy": DeliveryPolicy.from_settings(settings, **changes),
            "executor": executor_named(executor, workers=workers, settings=settings),
        }
        with RichProgress(err_console) as progress:
            if target == "resume" and run_id is not None:
                summary = resume_run(engine, run_id=run_id, progress=progress, **common)
            elif target == "retry-failed" and run_id is not None:
                summary = retry_failed_run(
                    engine,
                    run_id=run_id,
                    progress=progress,
                    include_unknown=include_unknown,
                    **common,
                )
            else:
                summary = run_campaign(
                    engine, campaign=target, shard_count=shards, progress=progress, **common
                )
    except (TransportConfigError, PlanError, SegmentError, CampaignConfigError) as exc:
        raise fail(str(exc), 2) from exc
    except (DeliveryError, ExecutorError) as exc:
        raise fail(str(exc), 1) from exc
    heading = f"run {summary.run_id}" + (f" of {target!r}" if target not in RUN_FORMS else "")
    _print_run(summary, as_json=as_json, heading=heading)


@app.command("serve")
def serve_command(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8000, min=1, max=65535, help="Port to listen on."),
    demo: bool = typer.Option(False, "--demo", help="Allow the insecure default secret key."),
    web: bool = typer.Option(True, "--web/--no-web", help="Serve the web app."),
    with_scheduler: bool = typer.Option(
        True, "--scheduler/--no-scheduler", help="Run the scheduler in this process."
    ),
    config: Path | None = ConfigOption,
) -> None:
    """Run the service: the web app (tracking, unsubscribe, preferences) and the scheduler."""
    settings = settings_or_exit(config)
    if not web:
        if not with_scheduler:
            raise fail("--no-web --no-scheduler leaves nothing to run: drop one of them", 2)
        from newsletter.cli_schedule import start_scheduler

        start_scheduler(settings=settings, engine=migrated_engine(settings), background=False)
        return
    if settings.uses_default_secret and not demo:
        raise fail(
            "the secret key is the insecure default, so anyone could forge tracking and "
            "unsubscribe links. Set NEWSLETTER_SECRET_KEY to a long random value, e.g.\n"
            "  export NEWSLETTER_SECRET_KEY=$(python -c 'import secrets; "
            "print(secrets.token_urlsafe(32))')\n"
            "(or secret_key in newsletter.toml), or pass --demo to try it out.",
            2,
        )
    if settings.uses_default_secret:
        err_console.print("[yellow]warning:[/yellow] --demo: using the insecure default key")
    from newsletter.api.app import run_server

    engine = migrated_engine(settings)
    if with_scheduler:
        from newsletter.cli_schedule import start_scheduler

        start_scheduler(settings=settings, engine=engine, background=True)
    run_server(settings=settings, engine=engine, host=host, port=port)


from newsletter import cli_schedule  # noqa: E402  (its commands need the helpers above)

cli_schedule.register(app)

import newsletter.cli_worker  # noqa: E402, F401  (registers `newsletter worker`)

if __name__ == "__main__":  # pragma: no cover
    app()
