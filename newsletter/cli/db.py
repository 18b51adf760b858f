"""`newsletter db`: schema migrations (upgrade, downgrade, current)."""

from __future__ import annotations

from pathlib import Path

import typer

from newsletter.cli.common import (
    ConfigOption,
    _migration_errors,
    app,
    console,
    settings_or_exit,
)

db_app = typer.Typer(no_args_is_help=True, help="Database schema migrations.")


app.add_typer(db_app, name="db")


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
