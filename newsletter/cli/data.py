"""`newsletter stats`, `import movielens|csv` and `sync`: data in."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from newsletter.cli.common import (
    ConfigOption,
    NowOption,
    _when,
    app,
    console,
    err_console,
    fail,
    migrated_engine,
    print_json,
    progress_bars,
    settings_or_exit,
)
from newsletter.cli.text import (
    import_lines,
)

import_app = typer.Typer(no_args_is_help=True, help="Import behaviour from files.")


app.add_typer(import_app, name="import")


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
            offered = import_movielens(engine, directory=directory, now=when, progress=bars)
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
