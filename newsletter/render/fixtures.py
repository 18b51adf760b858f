"""Fixture render input: a realistic digest for previews on an empty database, tests and benchmarks.

``fixture_input(slots=8, message_id=1, kind="digest")`` returns plain render input (see
``newsletter.render.context``) with a hero and sections, images, summaries and reason lines;
``render_fixture(compiled, settings)`` renders it through the production path at
``FIXTURE_NOW``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from newsletter.config import Settings
    from newsletter.render.compile import CompiledTemplate
    from newsletter.render.render import RenderedMessage

FIXTURE_NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)

_TITLES = (  # title, topic, reason kind, reason sentence
    (
        "Async Python in practice",
        "python",
        "similar",
        "Because you read “Concurrency made simple”.",
    ),
    (
        "A field guide to SQL window functions",
        "databases",
        "topic",
        "Because you follow databases.",
    ),
    ("Why your tests are slow", "testing", "collaborative", "Readers like you saved this."),
    ("The case for boring technology", "engineering", "popular", "Popular with readers this week."),
    ("Profiling numpy without tears", "python", "similar", "Because you read “Vectorize it”."),
    ("Designing email that survives Outlook", "email", "fresh", "New in email, a topic you read."),
    (
        "Postgres indexes, explained with maps",
        "databases",
        "collaborative",
        "Readers like you read this.",
    ),
    (
        "Something different: typography basics",
        "design",
        "explore",
        "Something new we think you may like.",
    ),
)
_SECTIONS = ("More for you", "From topics you follow", "Something different")


def fixture_item(index: int) -> dict[str, Any]:
    """One synthetic item (index wraps around the fixture titles)."""
    title, topic, _, _ = _TITLES[index % len(_TITLES)]
    slug = title.lower().replace(" ", "-").replace(",", "").replace(":", "")
    return {
        "id": 1000 + index,
        "title": title if index < len(_TITLES) else f"{title} (part {index // len(_TITLES) + 1})",
        "url": f"https://example.com/articles/{slug}?utm_source=newsletter&i={index}",
        "image_url": f"https://images.example.com/{index % len(_TITLES)}.png",
        "summary": (
            f"A practical, {topic}-flavoured read: what works, what does not, and the one "
            "change that made the biggest difference for the teams we talked to."
        ),
        "topics": [topic],
    }


def fixture_slot(position: int) -> dict[str, Any]:
    """One slot with an item and its reason."""
    _, topic, kind, text = _TITLES[position % len(_TITLES)]
    return {
        "position": position,
        "source": "explore" if kind == "explore" else "hybrid",
        "item": fixture_item(position),
        "reason": {"kind": kind, "text": text, "anchor": topic},
    }


def fixture_input(
    *, slots: int = 8, message_id: int | str = 1, kind: str = "digest", name: str = "Ada Lovelace"
) -> dict[str, Any]:
    """A complete render input for one message with ``slots`` picks (hero + sections)."""
    per_section = max(1, (slots - 1 + len(_SECTIONS) - 1) // len(_SECTIONS))
    rest = [fixture_slot(i) for i in range(1, slots)]
    sections = [{"title": "Top pick", "slots": [fixture_slot(0)]}] if slots else []
    for index, title in enumerate(_SECTIONS):
        chunk = rest[index * per_section : (index + 1) * per_section]
        if chunk:
            sections.append({"title": title, "slots": chunk})
    return {
        "message_id": message_id,
        "arm": "personalized",
        "subscriber": {
            "id": 7,
            "email": "ada@example.org",
            "name": name,
            "timezone": "Europe/London",
            "attributes": {"plan": "pro"},
        },
        "campaign": {
            "id": 3,
            "name": "weekly-read",
            "display_name": "The Weekly Read",
            "kind": kind,
        },
        "run": {"id": 11, "scheduled_for": datetime(2026, 11, 23, 8, 0, tzinfo=UTC)},
        "trigger": {"kind": "new_in_topic", "topic": "python", "label": None}
        if kind == "trigger"
        else None,
        "sections": sections,
    }


def render_fixture(
    compiled: CompiledTemplate, settings: Settings, **overrides: Any
) -> RenderedMessage:
    """Render the fixture input (trigger flavour for trigger templates) at ``FIXTURE_NOW``."""
    from newsletter.render.context import build_context
    from newsletter.render.render import render_message

    kind = "trigger" if compiled.name.startswith("trigger") else "digest"
    data = {**fixture_input(kind=kind), **overrides}
    context = build_context(data, settings=settings)
    return render_message(compiled, context, settings=settings, now=FIXTURE_NOW)
