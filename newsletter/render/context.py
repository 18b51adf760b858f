"""The render context: a documented, frozen plain-data mapping that templates see (never ORM rows).

``build_context(data, *, settings)`` turns plain render input (a dict: a fixture, or a stored
message's input from ``render.stored.stored_inputs``) into the frozen context; this module
never reads the database. Every documented name is always present
(``None`` or empty when unknown), so templates never trip over a missing key. Dicts become
read-only ``MappingProxyType`` views and lists become tuples.

Input shape (plain dict)::

    {"message_id": 42, "arm": "personalized",
     "subscriber": {"id", "email", "name", "first_name", "timezone", "attributes": {...}},
     "campaign": {"id", "name", "display_name", "kind"}, "run": {"id", "scheduled_for"},
     "trigger": {"kind", "topic", "label"} | None,
     "sections": [{"title", "slots": [{"position", "source",
         "item": {"id", "title", "url", "image_url", "summary", "topics"},
         "reason": {"kind", "text", "anchor"}}]}]}

The documented context is ``CONTEXT_FIELDS`` below (path -> meaning); the linter checks template
variables against it and ``templates/README.md`` reproduces it for template authors.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import lru_cache
from types import MappingProxyType
from typing import Any

from newsletter.config import Settings
from newsletter.render.links import MessageLinks

CONTEXT_FIELDS: dict[str, str] = {
    "message.id": "message id (stable across retries)",
    "message.arm": "experiment arm: personalized | popular",
    "subscriber.id": "subscriber id",
    "subscriber.email": "recipient address",
    "subscriber.name": "full name, or empty string",
    "subscriber.first_name": "first name (given, else first word of name), or empty string",
    "subscriber.timezone": "IANA timezone name",
    "subscriber.attributes.*": "free-form subscriber attributes (strings, numbers)",
    "campaign.id": "campaign id",
    "campaign.name": "campaign name (its identifier, e.g. weekly-digest)",
    "campaign.display_name": "the name readers see: config display_name, else the name made "
    "readable (weekly-digest -> Weekly digest)",
    "campaign.kind": "digest | trigger",
    "run.id": "run id",
    "run.scheduled_for": "scheduled time, ISO 8601 string",
    "run.date_label": "scheduled date for humans, e.g. '24 November 2026'",
    "trigger.kind": "trigger rule kind (trigger campaigns), else None",
    "trigger.topic": "the topic that fired the trigger, or None",
    "trigger.label": "a human headline for the trigger, or None",
    "hero": "the first pick (a slot, see sections[].slots[]), or None when there are no slots",
    "sections[].title": "section heading",
    "sections[].slots[].position": "0-based position of the slot within the message",
    "sections[].slots[].source": "which recommender chose it (collaborative, content, explore…)",
    "sections[].slots[].item.id": "item id",
    "sections[].slots[].item.title": "item title",
    "sections[].slots[].item.url": "item URL (http/https; rewritten to a tracked link)",
    "sections[].slots[].item.image_url": "item image URL, or None",
    "sections[].slots[].item.summary": "short item summary, or empty string",
    "sections[].slots[].item.topics[]": "item topics (strings)",
    "sections[].slots[].reason.kind": "reason kind: similar | popular | topic | fresh | explore …",
    "sections[].slots[].reason.text": "the 'recommended because' sentence",
    "sections[].slots[].reason.anchor": "the item or topic the reason refers to, or None",
    "slot_count": "number of slots, hero included",
    "unsubscribe_url": "signed unsubscribe page URL",
    "preferences_url": "signed preferences page URL",
    "view_url": "signed view-in-browser URL",
    "postal_address": "sender's postal address (required in commercial email)",
    "sender_name": "display name of the From address",
    "preheader": "the rendered preheader (HTML template only)",
}
"""Every name a template may use. ``[]`` marks a list element, ``.*`` a free-form mapping.
Slots appear in ``sections`` (hero excluded) and as ``hero``."""


class ContextError(ValueError):
    """Render input is missing a required field or has a wrong type; the message names it."""


_SCALARS = (str, int, float, bool, type(None))


def freeze(value: Any) -> Any:
    """Deep-convert dicts to read-only mappings and lists to tuples (plain data only)."""
    kind = type(value)
    if kind in _SCALARS:
        return value
    if kind is dict or isinstance(value, Mapping):
        return MappingProxyType({str(k): freeze(v) for k, v in value.items()})
    if kind is list or kind is tuple:
        return tuple([freeze(v) for v in value])
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, _SCALARS):
        return value
    raise ContextError(f"render context accepts plain data only, got {kind.__name__}")


def _require(data: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in data or data[key] is None:
        raise ContextError(f"render input: {where}.{key} is required")
    return data[key]


def _http_url(value: Any) -> str | None:
    """Keep http(s) URLs only; anything else (javascript:, data:) is dropped."""
    if not value:
        return None
    url = str(value).strip()
    return url if re.match(r"(?i)^https?://", url) else None


_P = MappingProxyType


def _plain_id(value: Any) -> Any:
    return value if value is None or type(value) in (int, str) else str(value)


def _subscriber(data: Mapping[str, Any]) -> Mapping[str, Any]:
    name = str(data.get("name") or "").strip()
    first = str(data.get("first_name") or "").strip() or (name.split()[0] if name else "")
    return _P(
        {
            "id": _plain_id(_require(data, "id", "subscriber")),
            "email": str(_require(data, "email", "subscriber")),
            "name": name,
            "first_name": first,
            "timezone": str(data.get("timezone") or "UTC"),
            "attributes": freeze(dict(data.get("attributes") or {})),
        }
    )


def _slot(data: Mapping[str, Any], fallback_position: int) -> Mapping[str, Any]:
    """One frozen slot (built frozen: a generic deep freeze costs more than the rest)."""
    item = _require(data, "item", "slot")
    reason = data.get("reason") or {}
    url = _http_url(item.get("url"))
    if url is None:
        raise ContextError(f"render input: item {item.get('id')!r} needs an http(s) url")
    position = data.get("position")
    anchor = reason.get("anchor")
    return _P(
        {
            "position": fallback_position if position is None else int(position),
            "source": str(data.get("source") or ""),
            "item": _P(
                {
                    "id": _plain_id(item.get("id")),
                    "title": str(_require(item, "title", "item")),
                    "url": url,
                    "image_url": _http_url(item.get("image_url")),
                    "summary": str(item.get("summary") or ""),
                    "topics": tuple([str(t) for t in item.get("topics") or ()]),
                }
            ),
            "reason": _P(
                {
                    "kind": str(reason.get("kind") or ""),
                    "text": str(reason.get("text") or ""),
                    "anchor": None if anchor is None else str(anchor),
                }
            ),
        }
    )


def _sections(raw: Sequence[Mapping[str, Any]]) -> tuple[Mapping[str, Any] | None, tuple]:
    """Normalize sections; split off the hero (lowest position) from the section lists."""
    built: list[tuple[str, list[Mapping[str, Any]]]] = []
    counter = 0
    for section in raw:
        slots = []
        for slot in section.get("slots") or ():
            slots.append(_slot(slot, counter))
            counter += 1
        built.append((str(section.get("title") or ""), slots))
    every = [slot for _, slots in built for slot in slots]
    hero = min(every, key=lambda s: s["position"]) if every else None
    sections = []
    for title, slots in built:
        kept = tuple(s for s in slots if s is not hero)
        if kept:
            sections.append(_P({"title": title, "slots": kept}))
    return hero, tuple(sections)


@lru_cache(maxsize=256)
def _date_label(value: Any) -> str:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value
    return f"{value.day} {value:%B %Y}" if isinstance(value, datetime) else ""


def _hashable(value: Any) -> Any:
    return value if isinstance(value, str | datetime) else None


def display_name(campaign: Mapping[str, Any]) -> str:
    """The name readers see: the given display name, else the campaign name made readable."""
    given = str(campaign.get("display_name") or "").strip()
    if given:
        return given
    name = re.sub(r"[-_]+", " ", str(campaign.get("name") or "Newsletter")).strip()
    return name[:1].upper() + name[1:] if name else "Newsletter"


def build_context(data: Mapping[str, Any], *, settings: Settings) -> Mapping[str, Any]:
    """Build the frozen, documented render context for one message from plain render input."""
    message_id = _require(data, "message_id", "input")
    campaign, run = data.get("campaign") or {}, data.get("run") or {}
    trigger = data.get("trigger") or {}
    hero, sections = _sections(data.get("sections") or ())
    links = MessageLinks(
        base_url=settings.base_url, secret_key=settings.secret_key, message_id=message_id
    )
    sender_name = settings.sender.split("<")[0].strip().strip('"') if "<" in settings.sender else ""
    scheduled = run.get("scheduled_for")
    context = {
        "message": _P({"id": _plain_id(message_id), "arm": str(data.get("arm") or "personalized")}),
        "subscriber": _subscriber(_require(data, "subscriber", "input")),
        "campaign": _P(
            {
                "id": _plain_id(campaign.get("id")),
                "name": str(campaign.get("name") or "Newsletter"),
                "display_name": display_name(campaign),
                "kind": str(campaign.get("kind") or "digest"),
            }
        ),
        "run": _P(
            {
                "id": _plain_id(run.get("id")),
                "scheduled_for": freeze(scheduled),
                "date_label": _date_label(_hashable(scheduled)),
            }
        ),
        "trigger": freeze({k: trigger.get(k) for k in ("kind", "topic", "label")}),
        "hero": hero,
        "sections": sections,
        "slot_count": sum(len(s["slots"]) for s in sections) + (hero is not None),
        "unsubscribe_url": links.unsubscribe(),
        "preferences_url": links.preferences(),
        "view_url": links.view(),
        "postal_address": settings.postal_address,
        "sender_name": sender_name,
        "preheader": "",
    }
    return _P(context)


def slot_urls(context: Mapping[str, Any]) -> dict[str, int]:
    """Map each item URL to its slot position (first wins), to credit clicks to slots."""
    found: dict[str, int] = {}
    slots = [context["hero"]] if context.get("hero") else []
    slots += [slot for section in context.get("sections", ()) for slot in section["slots"]]
    for slot in slots:
        found.setdefault(slot["item"]["url"], slot["position"])
    return found


def subscriber_input(row: Any) -> dict[str, Any]:
    """Plain subscriber input from a Subscriber row."""
    return {
        "id": row.id,
        "email": row.email,
        "name": row.name,
        "timezone": row.timezone,
        "attributes": dict(row.attributes or {}),
    }


def item_input(row: Any) -> dict[str, Any]:
    """Plain item input from an Item row."""
    return {
        "id": row.id,
        "title": row.title,
        "url": row.url,
        "image_url": row.image_url,
        "summary": row.summary,
        "topics": list(row.topics or ()),
    }
