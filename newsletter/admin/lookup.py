"""Subscriber lookup: search by email, key or id; one subscriber's status, arms, preferences,
recent messages with their slots (source, score, reason) and events, and the ``why`` answer."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from newsletter.db import Engine
from newsletter.models import Subscriber
from newsletter.plan.planner import PlanError
from newsletter.plan.segments import SegmentError
from newsletter.plan.why import Explanation, why
from newsletter.store import lookup as store
from newsletter.store.overview import campaigns


class SubscriberNotFound(ValueError):
    """No such subscriber or campaign; the message says which."""


@dataclass
class SubscriberPage:
    subscriber: Subscriber
    suppressed: str | None
    arms: list[tuple[str, str, datetime]]
    messages: list[store.MessageRow]
    slots: dict[int, list[store.SlotRow]]
    events: list[tuple[str, datetime, bool, str | None, int | None]]
    campaigns: list[str]
    campaign: str | None = None
    why: Explanation | None = None
    why_error: str | None = None
    extra: dict[str, object] = field(default_factory=dict)


def search(engine: Engine, *, query: str, limit: int = 20) -> list[store.SubscriberHit]:
    """Subscribers matching an email (part), name (part), key or id."""
    return store.search_subscribers(engine, query=query, limit=limit)


def subscriber_page(
    engine: Engine, *, subscriber_id: int, campaign: str | None = None
) -> SubscriberPage:
    """Everything the subscriber page shows; `why` for `campaign` (default: their newest)."""
    person = store.subscriber(engine, subscriber_id=subscriber_id)
    if person is None:
        raise SubscriberNotFound(f"no subscriber {subscriber_id}")
    messages = store.recent_messages(engine, subscriber_id=subscriber_id)
    names = [c.name for c in campaigns(engine)]
    chosen = campaign or (messages[0].campaign if messages else (names[0] if names else None))
    page = SubscriberPage(
        subscriber=person,
        suppressed=store.suppression_reason(engine, email=person.email),
        arms=store.assignments(engine, subscriber_id=subscriber_id),
        messages=messages,
        slots=store.slots_of(engine, message_ids=[m.id for m in messages[:5]]),
        events=store.recent_events(engine, subscriber_id=subscriber_id),
        campaigns=names,
        campaign=chosen,
    )
    if chosen is not None:
        try:
            page.why = why(engine, subscriber=str(subscriber_id), campaign=chosen)
        except (PlanError, SegmentError) as exc:
            page.why_error = str(exc)
    return page
