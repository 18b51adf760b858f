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


if __name__ == "__main__":  # pragma: no cover
    app()
