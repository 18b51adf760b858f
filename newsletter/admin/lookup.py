"""Subscriber lookup: search by email, key or id; one subscriber's status, arms, preferences,
recent messages with their slots (source, score, reason) and events, and the ``why`` answer,
asked with the server's settings as ``newsletter why`` asks it (segments from
``settings.segment_folder``, times in the subscriber's timezone, the arm's Feedback-ID code)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from newsletter.config import Settings
from newsletter.db import Engine, as_utc
from newsletter.models import Subscriber
from newsletter.plan.cadence import zone
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
    why_facts: list[tuple[str, str]] = field(default_factory=list)
    extra: dict[str, object] = field(default_factory=dict)


def search(engine: Engine, *, query: str, limit: int = 20) -> list[store.SubscriberHit]:
    """Subscribers matching an email (part), name (part), key or id."""
    return store.search_subscribers(engine, query=query, limit=limit)


def when(moment: datetime, timezone: str | None) -> str:
    """'2026-06-01 06:00 UTC (08:00 Europe/Paris, their time)'; the date is repeated when the
    local day differs. Without a timezone, only the UTC time."""
    moment = as_utc(moment)
    utc = f"{moment:%Y-%m-%d %H:%M} UTC"
    if not timezone:
        return utc
    local = moment.astimezone(zone(timezone))
    shown = f"{local:%H:%M}" if local.date() == moment.date() else f"{local:%Y-%m-%d %H:%M}"
    return f"{utc} ({shown} {timezone}, their time)"


def why_facts(answer: Explanation) -> list[tuple[str, str]]:
    """The facts ``newsletter why`` prints beside its summary, as (label, value) rows: the arm
    and its Feedback-ID code, the reason code, when it was planned and sent (UTC and their
    local time), why then, and the other messages that filled a cap."""
    tz = answer.timezone
    facts: list[tuple[str, str]] = []
    if answer.arm:
        code = f" (Feedback-ID code {answer.feedback_code})" if answer.feedback_code else ""
        facts.append(("Arm", f"{answer.arm}{code}"))
    if answer.reason:
        facts.append(("Reason code", answer.reason))
    if answer.planned_for:
        facts.append(("Planned for", when(answer.planned_for, tz)))
    if answer.sent_at:
        facts.append(("Sent at", when(answer.sent_at, tz)))
    facts += [("Why then", line) for line in answer.timing]
    facts += [("Another message", when(t, tz)) for t in answer.other_messages]
    return facts


def subscriber_page(
    engine: Engine,
    *,
    subscriber_id: int,
    settings: Settings,
    campaign: str | None = None,
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
            page.why = why(
                engine,
                subscriber=str(subscriber_id),
                campaign=chosen,
                settings=settings,  # its segment folder too, as `newsletter why`
            )
            page.why_facts = why_facts(page.why)
        except (PlanError, SegmentError) as exc:
            page.why_error = str(exc)
    return page
