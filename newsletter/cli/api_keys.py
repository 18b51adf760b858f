"""`newsletter apikey ...` and `newsletter bounces ...`: thin shells over store and track.

Registered on the main app at the end of ``newsletter.cli``; helpers are imported from there
when a command runs (so either module may be imported first).
"""

from __future__ import annotations

from pathlib import Path

import typer

apikey_app = typer.Typer(no_args_is_help=True, help="API keys for /api (stored hashed).")
bounces_app = typer.Typer(no_args_is_help=True, help="Bounce and complaint reports.")
ConfigOption = typer.Option(None, "--config", help="newsletter.toml to use.")


@apikey_app.command("create")
def apikey_create(
    name: str,
    scope: str = typer.Option("events", "--scope", help="events (events, upserts) or admin."),
    rate_limit: int | None = typer.Option(
        None, "--rate-limit", help="Requests per minute (default: api_rate_limit_per_minute)."
    ),
    config: Path | None = ConfigOption,
) -> None:
    """Create an API key NAME and print it once (only its hash is stored)."""
    from newsletter.cli.common import console, fail, migrated_engine, settings_or_exit
    from newsletter.db import now_utc
    from newsletter.store.apikeys import ApiKeyError, create_key

    engine = migrated_engine(settings_or_exit(config))
    try:
        info, key = create_key(engine, name=name, scope=scope, rate_limit=rate_limit, now=now_utc())
    except ApiKeyError as exc:
        raise fail(str(exc), 2) from exc
    console.print(f"created key {info.name!r} (scope {info.scope}); it is shown only now:")
    typer.echo(key)


@apikey_app.command("revoke")
def apikey_revoke(name: str, config: Path | None = ConfigOption) -> None:
    """Revoke the API key NAME: requests with it are refused from now on."""
    from newsletter.cli.common import console, fail, migrated_engine, settings_or_exit
    from newsletter.db import now_utc
    from newsletter.store.apikeys import revoke_key

    engine = migrated_engine(settings_or_exit(config))
    if not revoke_key(engine, name=name, now=now_utc()):
        raise fail(f"no live API key named {name!r} (see `newsletter apikey list`)")
    console.print(f"revoked key {name!r}")


@apikey_app.command("list")
def apikey_list(
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    config: Path | None = ConfigOption,
) -> None:
    """List API keys: name, prefix, scope, limit, created, last used, revoked."""
    from newsletter.cli.common import console, migrated_engine, print_json, settings_or_exit
    from newsletter.store.apikeys import list_keys

    keys = list_keys(migrated_engine(settings_or_exit(config)))
    if as_json:
        print_json([k.__dict__ for k in keys])
        return
    if not keys:
        console.print("no API keys yet: `newsletter apikey create NAME`")
    for k in keys:
        used = k.last_used_at.isoformat() if k.last_used_at else "never"
        state = f"revoked {k.revoked_at.isoformat()}" if k.revoked_at else "live"
        limit = f"{k.rate_limit}/min" if k.rate_limit else "default limit"
        console.print(
            f"{k.name}  {k.prefix}…  {k.scope}  {limit}  created {k.created_at.isoformat()}  "
            f"last used {used}  {state}",
            markup=False,
        )


@bounces_app.command("import")
def bounces_import(
    path: Path,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    config: Path | None = ConfigOption,
) -> None:
    """Record bounce (RFC 3464) and complaint (RFC 5965) reports from a file, mbox or Maildir."""
    from newsletter.cli.common import console, fail, migrated_engine, print_json, settings_or_exit
    from newsletter.db import now_utc
    from newsletter.track.dsn import read_messages
    from newsletter.track.feedback import import_reports

    if not path.exists():
        raise fail(f"{path} does not exist: give a message file, an mbox or a Maildir folder", 2)
    settings = settings_or_exit(config)
    engine = migrated_engine(settings)
    try:
        result = import_reports(engine, read_messages(path), settings=settings, now=now_utc())
    except (OSError, ValueError) as exc:
        raise fail(f"cannot read {path}: {exc}", 2) from exc
    counts = result.outcome.counts
    if as_json:
        print_json({"reports": result.reports, "recipients": counts, "skipped": result.skipped})
        return
    summary = ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "nothing recorded"
    skipped = len(result.skipped)
    console.print(f"{result.reports} reports: {summary}; {skipped} other messages skipped")
