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

from newsletter.config import Settings
from newsletter.db import Engine
from newsletter.render.compile import compile_template
from newsletter.render.context import build_context, item_input, subscriber_input
from newsletter.render.fixtures import fixture_input
from newsletter.render.lint import lint_template
from newsletter.render.render import RenderedMessage, render_message
from newsletter.render.stored import stored_inputs
from newsletter.render.templates import PreviewError as PreviewError
from newsletter.render.templates import find_template as find_template
from newsletter.render.templates import has_tables
from newsletter.store import rendering


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


SAMPLE_PARTS = "the sections, reasons, campaign name and date are sample data"


Origin = tuple[str, str]  # (data source code, a sentence saying which parts are real)


def _real_input(engine: Engine, subscriber: int | None) -> tuple[dict[str, Any], Origin] | None:
    """Render input from the latest message (of the subscriber), or fixture + real rows."""
    message_id = rendering.latest_message_id(engine, subscriber_id=subscriber)
    if message_id is not None:
        note = f"message {message_id} as planned, from the database"
        found = stored_inputs(engine, message_ids=[message_id])
        if message_id in found:
            return found[message_id], ("database", note)
    person = (
        rendering.subscriber_row(engine, subscriber_id=subscriber)
        if subscriber is not None
        else None
    )
    if subscriber is not None and person is None:
        raise PreviewError(f"subscriber {subscriber} does not exist")
    items = rendering.active_items(engine, limit=8)
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
    real = _real_input(engine, subscriber) if engine is not None and has_tables(engine) else None
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
    if engine is None or not has_tables(engine):
        raise PreviewError(f"subscriber {key!r}: the database is empty")
    from newsletter.store.planning import subscriber_id

    found = subscriber_id(engine, key=key)
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
