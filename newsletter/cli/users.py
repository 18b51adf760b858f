"""`newsletter user`: the people who sign in to the web UI (``newsletter serve``, /admin)."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

user_app = typer.Typer(no_args_is_help=True, help="Web UI users: viewers, editors, admins.")


@user_app.command("add")
def user_add(
    email: str,
    role: str = typer.Option(
        "viewer", help="viewer (reads), editor (edits, test-sends), admin (publishes, runs)."
    ),
    password_stdin: bool = typer.Option(
        False, "--password-stdin", help="Read the password from standard input (one line)."
    ),
    config: Path | None = typer.Option(None, "--config", help="newsletter.toml to use."),
) -> None:
    """Add user EMAIL (or reset its password and role); the password is asked for."""
    from newsletter.admin.accounts import AccountError, add_user
    from newsletter.cli.common import console, fail, migrated_engine, settings_or_exit
    from newsletter.db import now_utc

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    engine = migrated_engine(settings_or_exit(config))
    try:
        user, created = add_user(engine, email=email, password=password, role=role, now=now_utc())
    except AccountError as exc:
        raise fail(str(exc), 2) from exc
    verb = "added" if created else "updated (new password and role)"
    console.print(f"user {user.email} {verb}: {user.role}")


@user_app.command("list")
def user_list(
    config: Path | None = typer.Option(None, "--config", help="newsletter.toml to use."),
) -> None:
    """List the web UI users with their role and last sign-in."""
    from newsletter.cli.common import console, migrated_engine, settings_or_exit
    from newsletter.store.users import list_users

    for user in list_users(migrated_engine(settings_or_exit(config))):
        last = user.last_login_at.isoformat() if user.last_login_at else "never"
        console.print(f"{user.email:<40} {user.role:<7} last sign-in {last}")
