"""Test data for the tracking service: one sent message in a real database, and readers.

``world`` holds a subscriber, two items (topics ``python``, ``data``, ``<b>html</b>``), a campaign
on the shipped ``digest`` template, a run and a message sent at ``SENT_AT`` with two slots.
``Clock`` is a settable clock the app reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine
from sqlmodel import Session, select

from newsletter.models import (
    Campaign,
    Event,
    Item,
    ItemTopic,
    Message,
    Run,
    Slot,
    Subscriber,
    Suppression,
)
from testsupport import STRONG_SECRET

SECRET = STRONG_SECRET  # `serve` (the SIGTERM test) refuses a weak key
SENT_AT = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
ARTICLE_0 = "https://example.com/articles/first?utm=1&x=é"
ARTICLE_1 = "https://example.com/articles/second"


@dataclass
class World:
    """Ids of the rows a test talks about."""

    subscriber_id: int
    message_id: int
    item_ids: tuple[int, int]
    email: str


class Clock:
    """A settable clock: tests move time, the app reads it."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def after_send(self, seconds: float) -> None:
        self.now = SENT_AT + timedelta(seconds=seconds)


def _add(session: Session, row: object) -> int:
    session.add(row)
    session.flush()
    return int(row.id)  # type: ignore[attr-defined]


def build_world(engine: Engine) -> World:
    """Insert one sent message with two slots (and what it hangs off)."""
    t = SENT_AT - timedelta(days=1)
    with Session(engine, expire_on_commit=False) as s:
        sid = _add(
            s,
            Subscriber(
                email="reader@example.com",
                name="Ada Reader",
                topics=["python"],
                created_at=t,
                updated_at=t,
            ),
        )
        items = []
        for n, (url, topics) in enumerate(
            [(ARTICLE_0, ["python", "<b>html</b>"]), (ARTICLE_1, ["data"])]
        ):
            iid = _add(
                s,
                Item(
                    external_key=f"a{n}",
                    title=f"Article <{n}>",
                    url=url,
                    topics=topics,
                    updated_at=t,
                    published_at=t,
                ),
            )
            s.add_all([ItemTopic(item_id=iid, topic=topic) for topic in topics])
            items.append(iid)
        cid = _add(s, Campaign(name="weekly", template_name="digest", created_at=t))
        rid = _add(s, Run(campaign_id=cid, scheduled_for=SENT_AT, created_at=t))
        mid = _add(
            s,
            Message(
                run_id=rid,
                subscriber_id=sid,
                status="sent",
                planned_for=SENT_AT,
                sent_at=SENT_AT,
                updated_at=SENT_AT,
            ),
        )
        for position, iid in enumerate(items):
            s.add(
                Slot(
                    message_id=mid,
                    position=position,
                    item_id=iid,
                    source="collaborative",
                    score=1.0 - position / 10,
                    propensity=1.0,
                    reason_kind="popular",
                    reason_text="Popular this week",
                )
            )
        s.commit()
    return World(sid, mid, (items[0], items[1]), "reader@example.com")


def delete_message(engine: Engine, message_id: int) -> None:
    """Remove a message (its slots cascade)."""
    with Session(engine) as s:
        for slot in s.exec(select(Slot).where(Slot.message_id == message_id)):
            s.delete(slot)
        message = s.get(Message, message_id)
        if message is not None:
            s.delete(message)
        s.commit()


def events(engine: Engine, kind: str | None = None) -> list[Event]:
    """Every event (of a kind), oldest first."""
    with Session(engine) as s:
        query = select(Event).order_by(Event.id)  # type: ignore[arg-type]
        if kind is not None:
            query = query.where(Event.kind == kind)
        return list(s.exec(query))


def suppressions(engine: Engine) -> list[Suppression]:
    with Session(engine) as s:
        return list(s.exec(select(Suppression)))


def subscriber(engine: Engine, subscriber_id: int) -> Subscriber:
    with Session(engine) as s:
        row = s.get(Subscriber, subscriber_id)
        assert row is not None
        return row
