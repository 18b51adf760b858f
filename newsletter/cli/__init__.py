"""The command line, `newsletter COMMAND`: one module per command group.

`common` holds the Typer app and what every command shares (settings, consoles, errors,
options, engines); each other module adds its commands to that app when it is imported,
in the order `newsletter --help` lists them. Each command parses its options, calls one
stage or `newsletter.pipeline` function and prints the result.
"""

from __future__ import annotations

from newsletter.cli import (  # noqa: F401  (importing a module registers its commands)
    campaigns,
    data,
    db,
    plan,
    preview,
    reports,
    runs,
    serve,
    simulate,
    worker,
)
from newsletter.cli.api_keys import apikey_app, bounces_app
from newsletter.cli.common import app
from newsletter.cli.schedule import register as _register_schedule
from newsletter.cli.users import user_app

_register_schedule(app)
app.add_typer(user_app, name="user")
app.add_typer(apikey_app, name="apikey")
app.add_typer(bounces_app, name="bounces")

__all__ = ["app"]
