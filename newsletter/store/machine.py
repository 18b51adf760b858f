"""The SQL of message-level machine flags: read a message's events, write the final flags.

A click's flag can change after it was recorded (a later burst reveals a scanner), so the
flag is stored on the event row itself (``is_machine``, ``machine_reason``) and updated in
place: every report and the recommender read the final flag. Flags only ever turn machine.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, bindparam, select, update

from newsletter.tables import event_table

E = event_table.c
KINDS = ("click", "open", "honeypot")


@dataclass(frozen=True)
class MessageEvent:
    """A click, open or honeypot hit of one message, with its current flag."""

    id: int
    kind: str
    occurred_at: datetime
    slot_position: int | None
    url: str | None
    is_machine: bool


def message_events(engine: Engine, *, message_id: int) -> list[MessageEvent]:
    """The message's clicks, opens and honeypot hits, oldest first."""
    query = (
        select(E.id, E.kind, E.occurred_at, E.slot_position, E.url, E.is_machine)
        .where(E.message_id == message_id, E.kind.in_(KINDS))
        .order_by(E.occurred_at, E.id)
    )
    with engine.connect() as c:
        return [MessageEvent(*row) for row in c.execute(query)]


def mark_machine(engine: Engine, *, flags: Mapping[int, str]) -> int:
    """Flag the given events machine with their reason (those already machine keep theirs)."""
    if not flags:
        return 0
    statement = (
        update(event_table)
        .where(E.id == bindparam("event_id"), E.is_machine.is_(False))
        .values(is_machine=True, machine_reason=bindparam("reason"))
    )
    rows = [{"event_id": k, "reason": v[:100]} for k, v in flags.items()]
    with engine.begin() as c:
        c.execute(statement, rows)
    return len(rows)
