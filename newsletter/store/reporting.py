"""Read what reports need: per arm, how many messages went out and how readers responded."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, and_, case, func, select

from newsletter.models import MessageStatus
from newsletter.tables import (
    event_table,
    human_event,
    item_table,
    message_table,
    run_table,
    slot_table,
    subscriber_table,
)


@dataclass(frozen=True)
class ArmCounts:
    """One arm of one run: sent messages and the messages with each kind of response."""

    arm: str
    sent: int
    human_opens: int  # messages opened by a person (a human click counts as an open)
    human_clicks: int  # messages with at least one human click
    unsubscribes: int
    machine_opens: int  # messages whose only opens were machine (e.g. Apple MPP prefetch)
    machine_clicks: int  # messages with a machine-flagged click (link scanners)


def arm_counts(engine: Engine, *, run_id: int) -> list[ArmCounts]:
    """Per-arm counts of one run's sent messages; machine events never count as responses."""
    m = message_table.c
    e = event_table.c
    human = human_event
    per_message = (
        select(
            m.id.label("message_id"),
            m.arm.label("arm"),
            func.max(case((and_(human, e.kind.in_(["open", "click"])), 1), else_=0)).label("ho"),
            func.max(case((and_(human, e.kind == "click"), 1), else_=0)).label("hc"),
            func.max(case((e.kind == "unsubscribe", 1), else_=0)).label("un"),
            func.max(case((and_(~human, e.kind == "open"), 1), else_=0)).label("mo"),
            func.max(case((and_(~human, e.kind == "click"), 1), else_=0)).label("mc"),
        )
        .select_from(message_table.outerjoin(event_table, e.message_id == m.id))
        .where(m.run_id == run_id, m.status == MessageStatus.sent)
        .group_by(m.id, m.arm)
        .subquery()
    )
    q = per_message.c
    query = select(
        q.arm,
        func.count(),
        func.sum(q.ho),
        func.sum(q.hc),
        func.sum(q.un),
        func.sum(case((and_(q.mo == 1, q.ho == 0), 1), else_=0)),
        func.sum(q.mc),
    ).group_by(q.arm)
    with engine.connect() as connection:
        rows = connection.execute(query.order_by(q.arm)).all()
    return [ArmCounts(str(r[0]), *(int(v or 0) for v in r[1:])) for r in rows]


def latest_run_id(engine: Engine) -> int | None:
    """The newest run (by scheduled time, then id), or None."""
    r = run_table.c
    with engine.connect() as connection:
        return connection.execute(
            select(r.id).order_by(r.scheduled_for.desc(), r.id.desc()).limit(1)
        ).scalar()


def sent_slots(
    engine: Engine, *, run_id: int
) -> list[tuple[int, int, str, str, object, int, int, str]]:
    """(message id, subscriber id, subscriber key, arm, sent_at, position, item id, item key)."""

    m = message_table.c
    s = slot_table.c
    i = item_table.c
    u = subscriber_table.c
    query = (
        select(
            m.id,
            m.subscriber_id,
            u.external_key,
            m.arm,
            m.sent_at,
            s.position,
            s.item_id,
            i.external_key,
        )
        .join(subscriber_table, u.id == m.subscriber_id)
        .join(slot_table, s.message_id == m.id)
        .join(item_table, i.id == s.item_id)
        .where(m.run_id == run_id, m.status == MessageStatus.sent)
        .order_by(m.id, s.position)
    )
    with engine.connect() as connection:
        return [tuple(r) for r in connection.execute(query).all()]
