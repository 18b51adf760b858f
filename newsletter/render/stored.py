"""Render a stored (planned or sent) message: the one recipe for delivery, view-in-browser
and preview.

    stored_inputs(engine, *, message_ids) -> {message id: plain render input}
    render_stored(engine, *, message_ids, compiled, settings, now, inputs=None)
        -> {message id: RenderedMessage | RenderFailure}
    render_stored_html(engine, *, message_id, compiled, settings) -> str | RenderFailure

The rows come from ``store.rendering.render_rows`` (four queries per batch, whatever its
size); the input has the shape ``context.build_context`` documents. A message that is gone
(or lost its subscriber, run or campaign) is absent from ``stored_inputs`` and a
:class:`RenderFailure` in ``render_stored``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from newsletter.config import Settings
from newsletter.db import Engine
from newsletter.render.compile import CompiledTemplate
from newsletter.render.context import ContextError, build_context, item_input
from newsletter.render.render import RenderedMessage, render_html, render_message
from newsletter.render.sandbox import RenderError
from newsletter.store.rendering import RenderRows, render_rows

T = TypeVar("T")


@dataclass(frozen=True)
class RenderFailure:
    """Why a stored message could not be rendered (bad data or a template error)."""

    error: str
    template: bool = False  # the template failed (else the message's data is bad or gone)


def _sections(
    slots: Sequence[Any], items: Mapping[int, Any], titles: Mapping[str, str]
) -> list[dict[str, Any]]:
    """Group slot rows by their section key, in position order, as plain section input."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for slot in slots:
        grouped.setdefault(slot.section, []).append(
            {
                "position": slot.position,
                "source": slot.source,
                "item": item_input(items[slot.item_id]),
                "reason": {
                    "kind": slot.reason_kind,
                    "text": slot.reason_text,
                    "anchor": slot.reason_anchor,
                },
            }
        )
    return [
        {"title": titles.get(key, key.replace("_", " ").capitalize()), "slots": value}
        for key, value in grouped.items()
    ]


def _trigger(rows: RenderRows, message_id: int, config: Mapping[str, Any]) -> dict[str, Any]:
    """The firing a triggered message answers: rule kind, topic and headline."""
    fired = rows.triggers.get(message_id, {})
    kind = fired.get("kind") or dict(config.get("trigger") or {}).get("kind")
    return {"kind": kind, "topic": fired.get("topic"), "label": fired.get("label")}


def _input(rows: RenderRows, message_id: int) -> dict[str, Any]:
    h = rows.messages[message_id]
    config = dict(h.campaign_config or {})
    return {
        "message_id": message_id,
        "arm": h.arm,
        "subscriber": {
            "id": h.subscriber_id,
            "email": h.email,
            "name": h.name,
            "timezone": h.timezone,
            "attributes": dict(h.attributes or {}),
        },
        "campaign": {
            "id": h.campaign_id,
            "name": h.campaign_name,
            "display_name": config.get("display_name"),
            "kind": h.campaign_kind,
        },
        "run": {"id": h.run_id, "scheduled_for": h.scheduled_for},
        "trigger": _trigger(rows, message_id, config) if h.campaign_kind == "trigger" else None,
        "sections": _sections(
            rows.slots[message_id], rows.items, dict(config.get("section_titles") or {})
        ),
    }


def stored_inputs(engine: Engine, *, message_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """Plain render input of a batch of stored messages (the gone ones are absent)."""
    rows = render_rows(engine, message_ids=message_ids)
    return {mid: _input(rows, mid) for mid in rows.messages}


def render_stored(
    engine: Engine,
    *,
    message_ids: Sequence[int],
    compiled: CompiledTemplate,
    settings: Settings,
    now: datetime,
    inputs: Mapping[int, Mapping[str, Any]] | None = None,
) -> dict[int, RenderedMessage | RenderFailure]:
    """Render a batch of stored messages with one compiled template, exactly as delivery
    sends them; ``inputs`` (from :func:`stored_inputs`) saves reading them again."""
    found = inputs if inputs is not None else stored_inputs(engine, message_ids=message_ids)

    def message(context: Mapping[str, Any]) -> RenderedMessage:
        return render_message(compiled, context, settings=settings, now=now)

    return {mid: _attempt(mid, found.get(mid), message, settings) for mid in message_ids}


def render_stored_html(
    engine: Engine, *, message_id: int, compiled: CompiledTemplate, settings: Settings
) -> str | RenderFailure:
    """Only the HTML part of one stored message, exactly as it was sent (view in browser)."""
    data = stored_inputs(engine, message_ids=[message_id]).get(message_id)

    def html(context: Mapping[str, Any]) -> str:
        return render_html(compiled, context, settings=settings)

    return _attempt(message_id, data, html, settings)


def _attempt(
    mid: int,
    data: Mapping[str, Any] | None,
    render: Callable[[Mapping[str, Any]], T],
    settings: Settings,
) -> T | RenderFailure:
    """`render` of the message's context, or why it failed (its data, or the template)."""
    if data is None:
        return RenderFailure(f"message {mid} has no subscriber, run or campaign")
    try:
        return render(build_context(data, settings=settings))
    except ContextError as exc:
        return RenderFailure(str(exc))
    except RenderError as exc:
        return RenderFailure(str(exc), template=True)
