"""Preview a template on real data (or fixture data when the database is empty), strictly.

    preview(template, *, settings, engine=None, subscriber=None, now) -> Preview

The template is looked up in the database (``Template`` -> current ``TemplateVersion``) first,
then as a shipped name or a folder. The message is the subscriber's latest planned message
(or the latest message at all); without one, the fixture digest is used, with the real
subscriber and real items when they exist. Rendering uses ``StrictUndefined``; lint findings
and render warnings come back as ``warnings``; lint errors raise ``PreviewError``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, inspect

from newsletter.config import Settings
from newsletter.render.compile import TemplateSource, compile_template, load_template_source
from newsletter.render.context import (
    build_context,
    item_input,
    render_input_from_db,
    subscriber_input,
)
from newsletter.render.fixtures import fixture_input
from newsletter.render.lint import lint_template
from newsletter.render.render import RenderedMessage, render_message


class PreviewError(ValueError):
    """The template cannot be previewed (lint errors, unknown template or subscriber)."""


@dataclass(frozen=True)
class Preview:
    """A strictly rendered message, where its data came from, and what to look at."""

    rendered: RenderedMessage
    data_source: str  # database | database rows + fixture | fixture
    warnings: tuple[str, ...]
    note: str = ""  # which parts are real and which are sample data


def preview_engine(settings: Settings) -> Engine | None:
    """An engine on the configured database, or None when its SQLite file does not exist
    (previewing never creates a database)."""
    from newsletter.db import make_engine

    url = settings.resolved_database_url
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        return None
    return make_engine(url)


def _has_tables(engine: Engine | None) -> bool:
    if engine is None:
        return False
    try:
        return bool(inspect(engine).has_table("message"))
    except Exception:  # an unreachable database previews on fixture data
        return False


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
    """A template by database name, shipped name or folder path."""
    found = _db_template(engine, name) if _has_tables(engine) and engine else None
    if found is not None:
        return found
    try:
        return load_template_source(Path(name) if Path(name).is_dir() else name)
    except FileNotFoundError as exc:
        raise PreviewError(str(exc)) from exc


SAMPLE_PARTS = "the sections, reasons, campaign name and date are sample data"


Origin = tuple[str, str]  # (data source code, a sentence saying which parts are real)


def _real_input(engine: Engine, subscriber: int | None) -> tuple[dict[str, Any], Origin] | None:
    """Render input from the latest message (of the subscriber), or fixture + real rows."""
    from sqlmodel import Session, col, select

    from newsletter.models import Item, Message, Subscriber

    with Session(engine) as session:
        query = select(Message.id).order_by(col(Message.id).desc())
        if subscriber is not None:
            query = query.where(Message.subscriber_id == subscriber)
        message_id = session.exec(query).first()
        if message_id is not None:
            note = f"message {message_id} as planned, from the database"
            return render_input_from_db(session, message_id=message_id), ("database", note)
        person = session.get(Subscriber, subscriber) if subscriber is not None else None
        if subscriber is not None and person is None:
            raise PreviewError(f"subscriber {subscriber} does not exist")
        items = session.exec(select(Item).where(Item.active).limit(8)).all()
        if person is None and not items:
            return None
        data = fixture_input(message_id="preview")
        real = []
        if person is not None:
            data["subscriber"] = subscriber_input(person)
            real.append(f"subscriber {person.id}")
        slots = [slot for section in data["sections"] for slot in section["slots"]]
        for slot, item in zip(slots, items, strict=False):
            slot["item"] = item_input(item)
        if items:
            real.append(f"{min(len(items), len(slots))} items")
        nothing = "no message planned for them yet" if person else "no message planned yet"
        note = f"{' and '.join(real)} from the database; {SAMPLE_PARTS} ({nothing})"
        return data, ("database rows + fixture", note)


def preview_input(
    engine: Engine | None, *, subscriber: int | None, kind: str = "digest"
) -> tuple[dict[str, Any], Origin]:
    """Render input for a preview or test send, and a sentence saying where it came from:
    the subscriber's (or the latest) planned message; else real rows filled into the sample
    digest; else the sample digest alone."""
    real = _real_input(engine, subscriber) if engine is not None and _has_tables(engine) else None
    if real is None and subscriber is not None:
        raise PreviewError(f"subscriber {subscriber}: the database has no data to preview")
    return real or (
        fixture_input(message_id="preview", kind=kind),
        ("fixture", "sample data throughout (the database has no subscribers or items yet)"),
    )


def resolve_subscriber(engine: Engine | None, key: str | None) -> int | None:
    """A subscriber id from an id, email or external key; PreviewError when unknown."""
    if key is None:
        return None
    if engine is None or not _has_tables(engine):
        raise PreviewError(f"subscriber {key!r}: the database is empty")
    from newsletter.store.planning import subscriber_id

    found = subscriber_id(engine, key)
    if found is None:
        raise PreviewError(f"no subscriber with id, email or external key {key!r}")
    return found


def preview(
    template: str,
    *,
    settings: Settings,
    now: datetime,
    engine: Engine | None = None,
    subscriber: int | None = None,
) -> Preview:
    """Lint, compile strictly and render ``template`` for one subscriber's data."""
    source = find_template(template, engine=engine)
    issues = lint_template(source)
    errors = [str(i) for i in issues if i.severity == "error"]
    if errors:
        raise PreviewError("template has errors:\n  " + "\n  ".join(errors))
    compiled = compile_template(source, strict=True)
    kind = "trigger" if source.name.startswith("trigger") else "digest"
    data, (origin, note) = preview_input(engine, subscriber=subscriber, kind=kind)
    context = build_context(data, settings=settings)
    rendered = render_message(compiled, context, settings=settings, now=now)
    warnings = tuple(str(i) for i in issues) + rendered.warnings
    if settings.uses_default_secret:
        warnings += ("the secret key is the insecure default: set NEWSLETTER_SECRET_KEY",)
    return Preview(rendered=rendered, data_source=origin, warnings=warnings, note=note)
