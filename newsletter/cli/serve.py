"""`newsletter serve`: the web app, with the scheduler beside it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from newsletter.cli.common import (
    ConfigOption,
    app,
    err_console,
    fail,
    migrated_engine,
    settings_or_exit,
    strong_key_or_exit,
)
from newsletter.keys import (
    MIN_SECRET_BITS,
    estimated_bits,
    is_demo_key,
)


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
        from newsletter.cli.schedule import start_scheduler

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
    running: Any = None
    if with_scheduler:
        from newsletter.cli.schedule import start_scheduler

        running = start_scheduler(settings=settings, engine=engine, background=True)
    try:
        run_server(settings=settings, engine=engine, host=host, port=port)
    finally:  # the web app has stopped: stop the scheduler's thread with it
        if running is not None:
            running.shutdown(wait=False)
