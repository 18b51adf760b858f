"""Where a template comes from, in one place: the database's published version, a shipped
template, or a folder (a path, relative to the working directory or absolute).

    find_template(name, *, engine) -> TemplateSource

Delivery, view-in-browser, preview, lint and test sends all look templates up here.
"""

from __future__ import annotations

from pathlib import Path

from newsletter.db import Engine, has_tables
from newsletter.render.compile import TemplateSource, load_template_source


class PreviewError(ValueError):
    """The template cannot be previewed (lint errors, unknown template or subscriber)."""


class TemplateNotFound(PreviewError):
    """No template of that name in the database, among the shipped ones or as a folder."""


def _db_template(engine: Engine, name: str) -> TemplateSource | None:
    """The published database version of template `name` (drafts are never used)."""
    from newsletter.store.templates import published_version

    version = published_version(engine, name=name)
    if version is None:
        return None
    shipped = load_template_source("digest")
    return TemplateSource(
        name=f"{name}@v{version.version}",
        mjml=version.mjml,
        subject=version.subject,
        preheader=version.preheader,
        text=version.text,
        partials=shipped.partials,
    )


def find_template(name: str, *, engine: Engine | None) -> TemplateSource:
    """A template by database name (published version), shipped name or folder path."""
    found = _db_template(engine, name) if engine is not None and has_tables(engine) else None
    if found is not None:
        return found
    try:
        return load_template_source(Path(name) if Path(name).is_dir() else name)
    except FileNotFoundError as exc:
        raise TemplateNotFound(str(exc)) from exc
