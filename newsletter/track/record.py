"""Service functions behind the tracking endpoints: record clicks and opens, unsubscribe,
read and save preferences, re-render a message for the browser.

Each takes the engine and keyword-only facts (``now`` passed in, never read here). The ids come
from verified tokens; a token signed for a non-integer id (a preview) or for a message that no
longer exists records nothing. Recording a click or an open never raises: the reader gets the
redirect or the pixel whatever the database does, and the failure is logged (token digests
only, never tokens).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from newsletter.config import Settings
from newsletter.db import Engine
from newsletter.models import Frequency
from newsletter.render.compile import TemplateCache
from newsletter.render.sandbox import RenderError
from newsletter.render.stored import RenderFailure, render_stored_html
from newsletter.render.templates import PreviewError, find_template
from newsletter.store import events as store
from newsletter.track.bots import classify_click, classify_open
from newsletter.track.machine import reflag_message

log = logging.getLogger(__name__)
FREQUENCIES = tuple(f.value for f in Frequency)


class PreferencesError(ValueError):
    """Submitted preferences are invalid; the message names the bad value and the choices."""


class ViewError(RuntimeError):
    """The message exists but cannot be rendered (template missing or broken)."""


@dataclass(frozen=True)
class Preferences:
    """What the preferences page shows: the subscriber's choices and the topics to pick from."""

    email: str
    status: str
    frequency: str
    topics: tuple[str, ...]
    known_topics: tuple[str, ...]


def message_key(message_id: int | str) -> int | None:
    """The database id a token's message id stands for (None for preview ids like 'preview')."""
    if isinstance(message_id, int) and not isinstance(message_id, bool):
        return message_id
    return None


def record_click(
    engine: Engine,
    *,
    message_id: int | str,
    slot: int | None,
    url: str | None,
    user_agent: str | None,
    ip: str | None,
    now: datetime,
    method: str = "GET",
    prefetch: bool = False,
) -> bool:
    """Record a click event, flagged machine or human; True when a row was written.

    The request alone may flag it (``bots.classify_click``); then the message's burst rules
    run again (``machine.reflag_message``) and may flag it and the clicks before it.
    """
    key = message_key(message_id)
    if key is None:
        return False
    try:
        facts = store.message_facts(engine, message_id=key, slot=slot)
        if facts is None:
            return False
        is_machine, reason = classify_click(
            user_agent, ip, facts.sent_at, now, method=method, prefetch=prefetch
        )
        store.insert_event(
            engine,
            message_id=key,
            subscriber_id=facts.subscriber_id,
            slot_position=slot,
            item_id=facts.item_id,
            kind="click",
            occurred_at=now,
            is_machine=is_machine,
            machine_reason=reason,
            user_agent=user_agent,
            ip=ip,
            url=url,
        )
        reflag_message(engine, message_id=key, sent_at=facts.sent_at)
    except Exception:  # the reader gets the redirect whatever the database does
        log.exception("could not record a click for message %s", key)
        return False
    return True


def record_open(
    engine: Engine,
    *,
    message_id: int | str,
    user_agent: str | None,
    ip: str | None,
    now: datetime,
    method: str = "GET",
) -> bool:
    """Record an open event, flagged machine or human; True when a row was written."""
    key = message_key(message_id)
    if key is None:
        return False
    try:
        facts = store.message_facts(engine, message_id=key)
        if facts is None:
            return False
        is_machine, reason = classify_open(user_agent, ip, facts.sent_at, now)
        if method.upper() == "HEAD":
            is_machine, reason = True, "head-request"
        store.insert_event(
            engine,
            message_id=key,
            subscriber_id=facts.subscriber_id,
            kind="open",
            occurred_at=now,
            is_machine=is_machine,
            machine_reason=reason,
            user_agent=user_agent,
            ip=ip,
        )
        reflag_message(engine, message_id=key, sent_at=facts.sent_at)
    except Exception:  # the pixel must answer whatever happens
        log.exception("could not record an open for message %s", key)
        return False
    return True


def unsubscribe(
    engine: Engine, *, message_id: int | str, user_agent: str | None, ip: str | None, now: datetime
) -> bool:
    """Unsubscribe the message's subscriber (idempotent); False when the message is gone."""
    key = message_key(message_id)
    facts = store.message_facts(engine, message_id=key) if key is not None else None
    if facts is None:
        return False
    store.unsubscribe(engine, facts=facts, user_agent=user_agent, ip=ip, now=now)
    return True


def _subscriber_id(engine: Engine, message_id: int | str) -> int | None:
    key = message_key(message_id)
    facts = store.message_facts(engine, message_id=key) if key is not None else None
    return None if facts is None else facts.subscriber_id


def load_preferences(engine: Engine, *, message_id: int | str) -> Preferences | None:
    """The preferences of the message's subscriber, or None when the message is gone."""
    subscriber_id = _subscriber_id(engine, message_id)
    found = store.preferences(engine, subscriber_id=subscriber_id) if subscriber_id else None
    if found is None:
        return None
    return Preferences(
        found.email, found.status, found.frequency, found.topics, tuple(store.known_topics(engine))
    )


def validate_preferences(
    frequency: str | None, topics: Iterable[str], *, known: Sequence[str]
) -> tuple[str, tuple[str, ...]]:
    """Check a submitted frequency and topic list; returns them normalized (sorted, unique)."""
    if frequency not in FREQUENCIES:
        raise PreferencesError(
            f"frequency {frequency!r} is not one of {', '.join(FREQUENCIES)}: pick one of them"
        )
    chosen = sorted({t.strip() for t in topics if t.strip()})
    unknown = [t for t in chosen if t not in set(known)]
    if unknown:
        raise PreferencesError(
            f"unknown topic(s) {', '.join(repr(t) for t in unknown)}: choose from the list shown"
        )
    return frequency, tuple(chosen)


def save_preferences(
    engine: Engine,
    *,
    message_id: int | str,
    frequency: str | None,
    topics: Sequence[str],
    now: datetime,
) -> Preferences | None:
    """Validate and store the subscriber's frequency and topics; None when the message is gone."""
    subscriber_id = _subscriber_id(engine, message_id)
    if subscriber_id is None:
        return None
    known = store.known_topics(engine)
    frequency, chosen = validate_preferences(frequency, topics, known=known)
    if not store.update_preferences(
        engine, subscriber_id=subscriber_id, frequency=frequency, topics=chosen, now=now
    ):
        return None
    return load_preferences(engine, message_id=message_id)


def message_html(
    engine: Engine,
    *,
    message_id: int | str,
    settings: Settings,
    cache: TemplateCache,
) -> str | None:
    """The message's HTML, rendered again as it was sent (None when the message is gone)."""
    key = message_key(message_id)
    name = store.template_name(engine, message_id=key) if key is not None else None
    if key is None or name is None:
        return None
    try:
        compiled = cache.get(find_template(name, engine=engine))
    except (PreviewError, RenderError, ValueError) as exc:
        raise ViewError(f"message {key}: template {name!r} cannot be rendered: {exc}") from exc
    done = render_stored_html(engine, message_id=key, compiled=compiled, settings=settings)
    if isinstance(done, RenderFailure):
        if not done.template:
            return None  # the message's data is gone or unusable
        raise ViewError(f"message {key}: template {name!r} cannot be rendered: {done.error}")
    return done
