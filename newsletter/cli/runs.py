"""`newsletter run`: send a campaign, `run list`, `run resume`, `run retry-failed`."""

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
    strong_key_or_exit,
)
from newsletter.cli.text import (
    delivery_plan_lines,
    nothing_to_send,
    run_list_lines,
)
from newsletter.config import Settings
from newsletter.db import Engine

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


TransportOption = typer.Option(
    None, help="smtp://host:port, smtps://…, outbox:DIR or memory: (default: smtp_url)."
)
SendAllOption = typer.Option(
    False,
    "--send-all",
    help="Send every planned message now, even those whose local send time has not come "
    "(by default they wait for it: run `newsletter run resume RUN` later).",
)


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
    transport: str | None = TransportOption,
    shards: int = typer.Option(1, min=1, help="Plan and deliver in this many shards."),
    workers: int = typer.Option(1, min=1, help="Plan and deliver shards in this many processes."),
    executor: str | None = ExecutorOption,
    on_unknown: str | None = typer.Option(
        None, help="After a crash, messages caught mid-send: resend (default) or fail."
    ),
    include_unknown: bool = typer.Option(
        False, help="retry-failed: also re-send messages whose outcome was unknown."
    ),
    send_all: bool = SendAllOption,
    new_run: bool = NewRunOption,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    config: Path | None = ConfigOption,
) -> None:
    """Send CAMPAIGN (plan, render, deliver); or `run list [CAMPAIGN]`, `run resume RUN`,
    `run retry-failed RUN`.

    When the campaign's newest run is planned but not sent yet (by `newsletter plan`, say),
    that run is sent instead of a second one; --new-run plans another.
    """
    if target == "list":
        return _list_form(second, as_json=as_json, config=config)
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
    _print_delivery(engine, summary, target=target, by_id=run_id is not None, as_json=as_json)


def _list_form(second: str | None, *, as_json: bool, config: Path | None) -> None:
    """`run list RUN` (one run with its shards' progress) or `run list [CAMPAIGN]`."""
    if second is not None and second.isdigit():
        from newsletter.cli.worker import run_list

        run_list(run_id=int(second), limit=1, as_json=as_json, config=config)
    else:
        _run_list(second, as_json=as_json, config=config)


def _print_delivery(
    engine: Engine, summary: Any, *, target: str, by_id: bool, as_json: bool
) -> None:
    """What was planned (when this command planned) and sent; exit 1 when nothing was."""
    heading = f"run {summary.run_id}" + ("" if by_id else f" of {target!r}")
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
    from newsletter.store.planning import campaign_names, find_campaign
    from newsletter.store.run_list import list_runs

    engine = migrated_engine(settings_or_exit(config))
    campaign_id = None
    if campaign is not None:
        found = find_campaign(engine, name=campaign)
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
