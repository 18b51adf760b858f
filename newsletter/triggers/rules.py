"""The shipped behavioural rules as pure functions: behaviour in, pending states out.

No database and no clock: :mod:`newsletter.triggers.engine` reads the behaviour, calls these
and stores what they return. A :class:`NewState` is one future firing of a campaign for one
subscriber; its ``dedupe`` names what fired, so the same behaviour evaluated twice yields
the same state (stored once).

* ``abandoned_cart``: each ``cart`` row at time ``t`` is due at ``t + delay_hours``; a
  ``purchase`` of the same item in ``[t, t + delay]`` cancels it (:func:`cart_cancels`).
* ``topic_reads``: a ``read`` at ``t`` that makes ``min_reads`` reads of one of its item's
  topics within ``(t - window, t]`` is due at ``t`` (once per subscriber, topic and UTC day).
* ``welcome``: a new subscriber gets one state per entry of ``steps_days``, due that many
  days after signup (whether a later step still goes out is decided when it fires).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from newsletter.enums import SubscriberStatus, TriggerKind
from newsletter.plan.campaigns import TriggerRule

Behaviour = tuple[int, int, str, datetime]  # subscriber id, item id, kind, occurred_at


@dataclass(frozen=True)
class NewState:
    """One future firing: who, what fired it (dedupe), when it is due, and its context."""

    subscriber_id: int
    dedupe: str
    kind: str
    due_at: datetime
    context: dict[str, Any] = field(default_factory=dict)


def cart_states(rule: TriggerRule, events: Sequence[Behaviour]) -> list[NewState]:
    """A pending state per ``cart`` row, due ``delay_hours`` after it."""
    delay = timedelta(hours=rule.delay_hours)
    return [
        NewState(
            sid,
            f"cart:{item}:{at.isoformat()}",
            rule.kind,
            at + delay,
            {"item_id": item, "carted_at": at.isoformat()},
        )
        for sid, item, kind, at in events
        if kind == "cart"
    ]


def cart_cancels(events: Sequence[Behaviour]) -> list[tuple[int, int, datetime]]:
    """(subscriber, item, time) of each ``purchase``: it cancels earlier carts of that item."""
    return [(sid, item, at) for sid, item, kind, at in events if kind == "purchase"]


def topic_states(
    rule: TriggerRule,
    events: Sequence[Behaviour],
    *,
    reads: Mapping[int, Sequence[tuple[int, datetime]]],
    topics: Mapping[int, Sequence[str]],
) -> list[NewState]:
    """States for reads that complete ``min_reads`` reads of one topic within the window.

    `reads` are each subscriber's reads (item, time) around the events, `topics` the topics
    of every item involved; the context names the topic and the reads that fired it.
    """
    window = timedelta(hours=rule.window_hours)
    out: dict[str, NewState] = {}
    for sid, item, kind, at in events:
        if kind != "read":
            continue
        mine = [(i, t) for i, t in reads.get(sid, ()) if at - window < t <= at]
        for topic in topics.get(item, ()):
            read = [i for i, _ in mine if topic in topics.get(i, ())]
            distinct = list(dict.fromkeys(read))
            if len(read) < rule.min_reads:
                continue
            dedupe = f"topic:{topic}:{at.date().isoformat()}"
            context = {"topic": topic, "read_item_ids": distinct[-rule.min_reads :]}
            out.setdefault(f"{sid}|{dedupe}", NewState(sid, dedupe, rule.kind, at, context))
    return list(out.values())


def welcome_states(
    rule: TriggerRule, subscribers: Sequence[tuple[int, datetime, Sequence[str], str]]
) -> list[NewState]:
    """One state per welcome step for each new (active) subscriber."""
    out = []
    for sid, created_at, topics, status in subscribers:
        if status != SubscriberStatus.active:
            continue
        topic = topics[0] if topics else None
        for step, days in enumerate(rule.steps_days):
            context = {"step": step, "day": days, "topic": topic}
            due = created_at + timedelta(days=days)
            out.append(NewState(sid, f"welcome:{step}", rule.kind, due, context))
    return out


def in_cooldown(rule: TriggerRule, *, last: datetime | None, now: datetime) -> bool:
    """Whether the campaign answered this subscriber less than ``cooldown_hours`` ago."""
    return last is not None and now - last < timedelta(hours=rule.cooldown_hours)


def join_titles(titles: Sequence[str]) -> str:
    """'A', 'A and B', 'A, B and C'."""
    names = [t for t in titles if t]
    if len(names) <= 1:
        return "".join(names)
    return ", ".join(names[:-1]) + " and " + names[-1]


def cart_reason(carted_at: datetime, tz: ZoneInfo) -> str:
    """'In your cart since Mon 1 Jun, 14:05' in the subscriber's time."""
    local = carted_at.astimezone(tz)
    return f"In your cart since {local:%a} {local.day} {local:%b}, {local:%H:%M}"


def label(rule: TriggerRule, context: Mapping[str, Any]) -> str:
    """The headline of a firing (the rule's own ``label`` wins; ``{topic}`` is filled)."""
    topic = context.get("topic") or "your topics"
    if rule.label:
        return rule.label.replace("{topic}", str(topic))
    if rule.kind == TriggerKind.abandoned_cart:
        return "You left these behind"
    if rule.kind == TriggerKind.topic_reads:
        return f"More on {topic}"
    if int(context.get("step") or 0) == 0:
        return "Welcome! Here is where to start"
    return "A few picks since you joined"
