"""`newsletter worker` (a Celery worker for a run's shard tasks) and `newsletter run list`.

Registered on the main app by ``newsletter.cli`` (one line); kept apart so the scale-out
commands do not tangle with the rest of the command line.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import typer

from newsletter.cli.common import (
    ConfigOption,
    app,
    console,
    fail,
    migrated_engine,
    print_json,
)
from newsletter.cli.common import (
    settings_or_exit as _settings,
)

POOLS = ("prefork", "solo", "threads")


@app.command("worker")
def worker_command(
    concurrency: int = typer.Option(1, min=1, help="Shard tasks this worker runs at once."),
    pool: str = typer.Option(
        "prefork", help="prefork (one process per task slot), solo (this process) or threads."
    ),
    name: str | None = typer.Option(None, help="Worker name (default: newsletter-PID@host)."),
    loglevel: str = typer.Option("INFO", help="Log level of the Celery worker."),
    config: Path | None = ConfigOption,
) -> None:
    """Run a Celery worker for the shards of runs sent with `--executor celery`.

    It reads broker_url, celery_queue and the rest of its settings from this machine's
    config (NEWSLETTER_* variables, newsletter.toml); the database URL comes with each task.
    """
    if pool not in POOLS:
        raise fail(f"--pool {pool!r}: use one of {', '.join(POOLS)}", 2)
    settings = _settings(config)
    from newsletter.distributed import CeleryError, celery_app, check_broker, use_settings

    use_settings(settings)
    app_ = celery_app(settings)
    try:
        check_broker(app_, settings.broker_url)
    except CeleryError as exc:
        raise fail(str(exc), 2) from exc
    hostname = name or f"newsletter-{os.getpid()}@{socket.gethostname()}"
    argv = ["worker", f"--pool={pool}", f"--concurrency={concurrency}"]
    argv += [f"--queues={settings.celery_queue}", f"--hostname={hostname}"]
    argv += [f"--loglevel={loglevel}", "--without-gossip", "--without-mingle"]
    app_.worker_main(argv)


def run_list(*, run_id: int | None, limit: int, as_json: bool, config: Path | None) -> None:
    """`newsletter run list [RUN]`: the newest runs (or one), with their shards' progress."""
    from newsletter.report.progress import run_progress

    engine = migrated_engine(_settings(config))
    runs = run_progress(engine, run_id=run_id, limit=limit)
    if run_id is not None and not runs:
        raise fail(f"there is no run {run_id}: list the runs with `newsletter run list`", 2)
    if as_json:
        print_json([r.as_dict() for r in runs])
        return
    if not runs:
        console.print("there are no runs yet: plan and send one with 'newsletter run CAMPAIGN'")
    for run in runs:
        console.print(
            f"run {run.run_id} {run.campaign!r} for {run.scheduled_for:%Y-%m-%d %H:%M}: "
            f"{run.status}, shards done {run.shards_done}/{len(run.shards)}",
            markup=False,
        )
        if run_id is None and len(run.shards) <= 1:
            continue
        for s in run.shards:
            console.print(
                f"  shard {s.shard}: {s.state}; members {s.members}, sent {s.sent}, "
                f"to send {s.to_send}, sending {s.sending}, failed {s.failed}, "
                f"skipped {s.skipped}, unplanned {s.unplanned}",
                markup=False,
            )
