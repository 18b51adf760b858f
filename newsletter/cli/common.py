"""What every command shares: the app, consoles, settings, errors, options and engines."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from newsletter.cli.progress import ProgressBars
from newsletter.config import ConfigError, Settings, load_settings
from newsletter.db import Engine, OperationalError
from newsletter.keys import (
    WeakSecretError,
    check_secret_key,
)

HELP = """Write a personal email newsletter for every subscriber, send it, and measure it.

Start with `newsletter demo`. With your own data: `import csv` (or `sync`), `campaign add`,
`preview`, `run`; then `run list`, `why`, `report`. Settings come from newsletter.toml and
NEWSLETTER_* environment variables (see newsletter.toml.example).
"""


app = typer.Typer(no_args_is_help=True, add_completion=False, help=HELP)


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


NewRunOption = typer.Option(
    False, "--new-run", help="Plan a new run even if one is planned and not sent yet."
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


def _holders(engine: Engine, run_id: int) -> dict[int, str]:
    """Other runs holding mail for this run's capped subscribers (for the hint)."""
    from newsletter.cli.text import CAP_REASONS
    from newsletter.store.run_list import capping_runs

    return capping_runs(engine, run_id=run_id, reasons=CAP_REASONS)


def _pending_schedule(engine: Engine, campaign: str, *, verb: str) -> datetime | None:
    """The scheduled time of the campaign's run that is not sent yet (and say so), or None."""
    from newsletter.store.planning import find_campaign
    from newsletter.store.run_list import pending_run

    found = find_campaign(engine, name=campaign)
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


def _executor_or_exit(name: str | None, *, workers: int, settings: Settings) -> Any:
    """The executor `--executor` / `--workers` / the config's `executor` name (exit 2 if bad)."""
    from newsletter.tasks import ExecutorError, executor_named

    try:
        return executor_named(name, workers=workers, settings=settings)
    except ExecutorError as exc:
        raise fail(str(exc), 2) from exc
