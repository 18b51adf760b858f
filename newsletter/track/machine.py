"""Apply the message-level machine rules (``track.bursts``) when events arrive.

``reflag_message`` re-reads one message's clicks, opens and honeypot hits, runs the rules and
flags every event they mark (flags only turn machine; see ``store.machine``). The recorders
call it after each click, open or honeypot hit, so a burst that reveals a scanner flags the
clicks recorded before it too. ``record_honeypot`` records a hit on the hidden link.
"""

from __future__ import annotations

import logging
from datetime import datetime

from newsletter.db import Engine
from newsletter.store import events as store
from newsletter.store import machine as flags
from newsletter.track.bursts import Hit, link_of, machine_hits

log = logging.getLogger(__name__)


def hit_of(event: flags.MessageEvent) -> Hit:
    """A stored click, open or honeypot hit as the burst rules see it."""
    link = link_of(event.slot_position, event.url)
    return Hit(event.id, event.kind, event.occurred_at, link, event.is_machine)


def reflag_message(engine: Engine, *, message_id: int, sent_at: datetime | None) -> int:
    """Flag the message's events the burst rules mark machine; returns how many changed."""
    events = flags.message_events(engine, message_id=message_id)
    hits = [hit_of(e) for e in events]
    current = {e.id: e.is_machine for e in events}
    marked = machine_hits(hits, sent_at=sent_at)
    return flags.mark_machine(engine, flags={k: v for k, v in marked.items() if not current[k]})


def record_honeypot(
    engine: Engine,
    *,
    message_id: int,
    user_agent: str | None,
    ip: str | None,
    now: datetime,
) -> bool:
    """Record a hit on the message's hidden link (machine by definition) and re-flag its burst."""
    try:
        facts = store.message_facts(engine, message_id=message_id)
        if facts is None:
            return False
        store.insert_event(
            engine,
            message_id=message_id,
            subscriber_id=facts.subscriber_id,
            kind="honeypot",
            occurred_at=now,
            is_machine=True,
            machine_reason="honeypot",
            user_agent=user_agent,
            ip=ip,
        )
        reflag_message(engine, message_id=message_id, sent_at=facts.sent_at)
    except Exception:  # the scanner gets its answer whatever the database does
        log.exception("could not record a honeypot hit for message %s", message_id)
        return False
    return True
