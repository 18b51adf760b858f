"""Reads for the subscriber pages: search, one subscriber's arms, messages, slots and events."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, func, or_, select

from newsletter.models import (
    Subscriber,
)
from newsletter.tables import (
    assignment_table,
    campaign_table,
    event_table,
    item_table,
    message_table,
    run_table,
    slot_table,
    subscriber_table,
    suppression_table,
)

S = subscriber_table.c
A = assignment_table.c
M = message_table.c
R = run_table.c
C = campaign_table.c
SL = slot_table.c
IT = item_table.c
E = event_table.c
SUP = suppression_table.c


@dataclass(frozen=True)
class SubscriberHit:
    id: int
    email: str
    name: str | None
    external_key: str | None
    status: str


@dataclass(frozen=True)
class MessageRow:
    id: int
    run_id: int
    campaign: str
    arm: str
    status: str
    reason: str | None
    planned_for: datetime
    sent_at: datetime | None
    subject: str | None


@dataclass(frozen=True)
class SlotRow:
    message_id: int
    position: int
    section: str
    item_id: int
    title: str
    source: str
    score: float
    propensity: float
    reason_kind: str
    reason_text: str


def search_subscribers(engine: Engine, *, query: str, limit: int = 10) -> list[SubscriberHit]:
    """Subscribers whose id or key is `query`, or whose email or name contains it."""
    text = query.strip()
    if not text:
        return []
    like = f"%{text.lower().replace('%', '').replace('_', '')}%"
    matches = [
        S.external_key == text,
        func.lower(S.email).like(like),
        func.lower(func.coalesce(S.name, "")).like(like),
    ]
    if text.isdigit():
        matches.insert(0, S.id == int(text))
    columns = (S.id, S.email, S.name, S.external_key, S.status)
    exact = (S.email == text) | (S.external_key == text)
    order = [exact.desc(), S.email] if not text.isdigit() else [(S.id == int(text)).desc(), S.email]
    with engine.connect() as c:
        rows = c.execute(select(*columns).where(or_(*matches)).order_by(*order).limit(limit))
        return [SubscriberHit(*row) for row in rows]


def subscriber(engine: Engine, *, subscriber_id: int) -> Subscriber | None:
    """One subscriber row, or None."""
    with engine.connect() as c:
        row = c.execute(select(Subscriber).where(S.id == subscriber_id)).first()
    return Subscriber.model_validate(row._mapping) if row else None


def suppression_reason(engine: Engine, *, email: str) -> str | None:
    """Why an address is suppressed, or None."""
    with engine.connect() as c:
        return c.execute(select(SUP.reason).where(SUP.email == email)).scalar()


def assignments(engine: Engine, *, subscriber_id: int) -> list[tuple[str, str, datetime]]:
    """(experiment, arm, assigned_at) of a subscriber, newest first."""
    query = select(A.experiment, A.arm, A.assigned_at).where(A.subscriber_id == subscriber_id)
    with engine.connect() as c:
        return [tuple(r) for r in c.execute(query.order_by(A.assigned_at.desc()))]


def recent_messages(engine: Engine, *, subscriber_id: int, limit: int = 10) -> list[MessageRow]:
    """A subscriber's newest messages (any status) with their campaign."""
    query = (
        select(
            M.id, M.run_id, C.name, M.arm, M.status, M.reason, M.planned_for, M.sent_at, M.subject
        )
        .join(run_table, R.id == M.run_id)
        .join(campaign_table, C.id == R.campaign_id)
        .where(M.subscriber_id == subscriber_id)
        .order_by(M.planned_for.desc(), M.id.desc())
        .limit(limit)
    )
    with engine.connect() as c:
        return [MessageRow(*row) for row in c.execute(query)]


def slots_of(engine: Engine, *, message_ids: list[int]) -> dict[int, list[SlotRow]]:
    """The slots of some messages (by position), with item titles."""
    if not message_ids:
        return {}
    query = (
        select(
            SL.message_id,
            SL.position,
            SL.section,
            SL.item_id,
            IT.title,
            SL.source,
            SL.score,
            SL.propensity,
            SL.reason_kind,
            SL.reason_text,
        )
        .join(item_table, IT.id == SL.item_id)
        .where(SL.message_id.in_(message_ids))
        .order_by(SL.message_id, SL.position)
    )
    out: dict[int, list[SlotRow]] = {i: [] for i in message_ids}
    with engine.connect() as c:
        for row in c.execute(query):
            out[int(row[0])].append(SlotRow(**row._mapping))
    return out


def recent_events(
    engine: Engine, *, subscriber_id: int, limit: int = 20
) -> list[tuple[str, datetime, bool, str | None, int | None]]:
    """(kind, occurred_at, is_machine, machine_reason, message id) of a subscriber, newest first."""
    query = (
        select(E.kind, E.occurred_at, E.is_machine, E.machine_reason, E.message_id)
        .where(E.subscriber_id == subscriber_id)
        .order_by(E.occurred_at.desc())
        .limit(limit)
    )
    with engine.connect() as c:
        return [tuple(r) for r in c.execute(query)]
