"""Record bounces, complaints and deliveries reported after sending (ESP webhooks, DSN files).

``record_feedback`` does everything for one recipient in one transaction: the event (linked
to its message; unique by the provider's ``external_id``, so a redelivered notification is a
``duplicate`` and changes nothing), and its consequences:

- complaint: the subscriber becomes ``complained`` (whatever they were, unless erased) and the
  address is suppressed with reason ``complained`` (replacing a weaker reason);
- bounce: an ``active`` subscriber becomes ``bounced``; the address is suppressed (``bounced``;
  an existing reason is kept);
- soft_bounce: counted; once the subscriber has ``soft_limit`` soft bounces since their last
  delivery, open or click, it is treated as a bounce;
- delivered: only the event.

An address that no subscriber has is still suppressed for a bounce or a complaint (no event:
an event belongs to a subscriber). When the report names no message of ours, the event is
linked to the subscriber's latest message sent at or before the report.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, Engine, func, select, update

from newsletter.models import SubscriberStatus
from newsletter.store.dialect import dialect_insert
from newsletter.tables import (
    event_table,
    human_event,
    message_table,
    subscriber_table,
    suppression_table,
)

S = subscriber_table.c
M = message_table.c
E = event_table.c
SUP = suppression_table.c
SUP_TABLE = suppression_table
RESETS = ("delivered", "open", "click")  # a soft-bounce streak ends with any of these


def _suppress(c: Connection, email: str, reason: str, now: datetime) -> None:
    statement = dialect_insert(c, table=SUP_TABLE).values(
        email=email, reason=reason, created_at=now
    )
    if reason == "complained":  # the strongest reason wins
        statement = statement.on_conflict_do_update(
            index_elements=["email"], set_={"reason": reason}
        )
    else:
        statement = statement.on_conflict_do_nothing()
    c.execute(statement)


def _message_for(
    c: Connection, subscriber_id: int, message_id: int | None, when: datetime
) -> int | None:
    """The message the report is about: the one named (if it is theirs), else their latest."""
    if message_id is not None:
        owner = c.execute(select(M.subscriber_id).where(M.id == message_id)).scalar()
        if owner == subscriber_id:
            return message_id
    latest = c.execute(
        select(M.id)
        .where(M.subscriber_id == subscriber_id, M.sent_at.is_not(None), M.sent_at <= when)
        .order_by(M.sent_at.desc(), M.id.desc())
        .limit(1)
    ).scalar()
    return None if latest is None else int(latest)


def _soft_streak(c: Connection, subscriber_id: int) -> int:
    """Soft bounces of the subscriber since their last delivery, open or click."""
    last_good = (
        select(func.max(E.occurred_at))
        .where(E.subscriber_id == subscriber_id, E.kind.in_(RESETS), human_event)
        .scalar_subquery()
    )
    query = select(func.count()).where(E.subscriber_id == subscriber_id, E.kind == "soft_bounce")
    query = query.where((last_good.is_(None)) | (E.occurred_at > last_good))
    return int(c.execute(query).scalar_one())


def _consequences(
    c: Connection, sid: int, email: str, kind: str, *, soft_limit: int, now: datetime
) -> str:
    """Apply a new event's effect on status and suppression; returns the effect's name."""
    table = subscriber_table
    if kind == "soft_bounce" and _soft_streak(c, sid) >= soft_limit:
        kind = "bounce"
    if kind == "complaint":
        keep = (SubscriberStatus.complained, SubscriberStatus.erased)
        c.execute(
            update(table)
            .where(S.id == sid, S.status.not_in(keep))
            .values(status=SubscriberStatus.complained, updated_at=now)
        )
        _suppress(c, email, "complained", now)
        return "suppressed"
    if kind == "bounce":
        c.execute(
            update(table)
            .where(S.id == sid, S.status == SubscriberStatus.active)
            .values(status=SubscriberStatus.bounced, updated_at=now)
        )
        _suppress(c, email, "bounced", now)
        return "suppressed"
    return "recorded"


def record_feedback(
    engine: Engine,
    *,
    kind: str,
    email: str,
    occurred_at: datetime,
    external_id: str,
    message_id: int | None,
    soft_limit: int,
    now: datetime,
) -> str:
    """Record one recipient's feedback; 'suppressed', 'recorded', 'duplicate' or 'unknown'."""
    address = email.strip().lower()
    with engine.begin() as c:
        row = c.execute(select(S.id).where(S.email == address)).first()
        if row is None:
            if kind in ("bounce", "complaint"):
                _suppress(c, address, "complained" if kind == "complaint" else "bounced", now)
            return "unknown"
        sid = int(row.id)
        values = {
            "message_id": _message_for(c, sid, message_id, occurred_at),
            "subscriber_id": sid,
            "kind": kind,
            "occurred_at": occurred_at,
            "is_machine": False,
            "external_id": external_id[:200],
        }
        statement = dialect_insert(c, table=event_table).values(**values)
        statement = statement.on_conflict_do_nothing(index_elements=["external_id"])
        if c.execute(statement.returning(E.id)).first() is None:
            return "duplicate"
        return _consequences(c, sid, address, kind, soft_limit=soft_limit, now=now)


def exists_event(engine: Engine, *, external_id: str) -> bool:
    """True when an event with this provider id is stored."""
    with engine.connect() as c:
        return c.execute(select(E.id).where(E.external_id == external_id)).first() is not None
