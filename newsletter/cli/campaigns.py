"""`newsletter campaign add|list` and `segment preview`."""

from __future__ import annotations

from pathlib import Path

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
    settings_or_exit,
)
from newsletter.config import Settings
from newsletter.db import Engine

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


segment_app = typer.Typer(no_args_is_help=True, help="Segments: who a rule selects.")


app.add_typer(segment_app, name="segment")


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
            definition=resolve_segment(engine, name, folder=settings.segment_folder),
            now=_when(at, "--at"),
            limits=SqlLimits.from_settings(settings),
        )
    except SegmentError as exc:
        raise fail(str(exc), 2) from exc
    shown = [
        {"id": p.id, "email": p.email, "status": p.status, "timezone": p.timezone}
        for p in profiles(engine, ids=ids[:sample])
    ]
    if as_json:
        print_json({"segment": name, "count": len(ids), "sample": shown})
        return
    console.print(f"segment [bold]{name}[/bold]: {len(ids)} subscribers")
    for row in shown:
        console.print(f"  {row['id']}  {row['email']}  {row['status']}  {row['timezone']}")
