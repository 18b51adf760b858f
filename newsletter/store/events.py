"""The SQL the tracking service needs: message facts, event rows, unsubscribe, preferences.

Every function opens its own short transaction. ``unsubscribe`` changes the subscriber's
status, upserts the suppression row and records the event in one transaction, and is
idempotent: the suppression insert ignores an existing address (keeping its reason) and the
event is written once per message (a unique key; concurrent POSTs insert it once). Works the
same on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update

from newsletter.models import (
    SubscriberStatus,
)
from newsletter.store.dialect import dialect_insert
from newsletter.tables import (
    campaign_table,
    event_table,
    item_topic_table,
    message_table,
    run_table,
    slot_table,
    subscriber_table,
    suppression_table,
)

M = message_table.c
S = subscriber_table.c
SL = slot_table.c
E = event_table.c
R = run_table.c
C = campaign_table.c
IT = item_topic_table.c
LIMITS = {"user_agent": 500, "ip": 64, "url": 2000, "machine_reason": 100}


@dataclass(frozen=True)
class MessageFacts:
    """What an event needs to know about its message: whose it is, when it was sent, the slot."""

    message_id: int
    subscriber_id: int
    sent_at: datetime | None
    item_id: int | None


@dataclass(frozen=True)
class SubscriberPreferences:
    """A subscriber's address, sending frequency and chosen topics."""

    subscriber_id: int
    email: str
    status: str
    frequency: str
    topics: tuple[str, ...]


def message_facts(
    engine: Engine, *, message_id: int, slot: int | None = None
) -> MessageFacts | None:
    """The message's subscriber, send time and the item at ``slot`` (None: no such message)."""
    with engine.connect() as c:
        row = c.execute(select(M.subscriber_id, M.sent_at).where(M.id == message_id)).first()
        if row is None:
            return None
        item_id = None
        if slot is not None:
            query = select(SL.item_id).where(SL.message_id == message_id, SL.position == slot)
            item_id = c.execute(query).scalar()
    return MessageFacts(message_id, int(row.subscriber_id), row.sent_at, item_id)


def _clipped(values: dict[str, Any]) -> dict[str, Any]:
    """Cut free text (user agent, URL...) to its column width, so PostgreSQL never refuses it."""
    out = dict(values)
    for name, width in LIMITS.items():
        if isinstance(out.get(name), str):
            out[name] = out[name][:width]
    return out


def insert_event(engine: Engine, **values: Any) -> int:
    """Insert one event row (Event column names as keywords); returns its id."""
    with engine.begin() as c:
        return _insert_event(c, values)


def _insert_event(c: Connection, values: dict[str, Any]) -> int:
    result = c.execute(insert(event_table).values(**_clipped(values)))
    key = result.inserted_primary_key
    return int(key[0]) if key else 0


def unsubscribe(
    engine: Engine, *, facts: MessageFacts, user_agent: str | None, ip: str | None, now: datetime
) -> bool:
    """Unsubscribe the message's subscriber: status, suppression and event, in one transaction.

    An active subscriber becomes ``unsubscribed`` (a bounced or complained one keeps that
    status); the address is suppressed (an existing row keeps its reason); the unsubscribe
    event is recorded once per message. Returns True when the event was new.
    """
    with engine.begin() as c:
        c.execute(
            update(subscriber_table)
            .where(S.id == facts.subscriber_id, S.status == SubscriberStatus.active)
            .values(status=SubscriberStatus.unsubscribed, status_changed_at=now, updated_at=now)
        )
        email = c.execute(select(S.email).where(S.id == facts.subscriber_id)).scalar_one()
        c.execute(
            dialect_insert(c, table=suppression_table)
            .values(email=email, reason="unsubscribed", created_at=now)
            .on_conflict_do_nothing()
        )
        values = {
            "message_id": facts.message_id,
            "subscriber_id": facts.subscriber_id,
            "kind": "unsubscribe",
            "occurred_at": now,
            "is_machine": False,
            "user_agent": user_agent,
            "ip": ip,
        }
        statement = dialect_insert(c, table=event_table).values(**_clipped(values))
        # the unique key uq_event_unsubscribe decides, not a check-then-insert
        inserted = c.execute(statement.on_conflict_do_nothing()).rowcount
    return bool(inserted)


def is_suppressed(engine: Engine, *, email: str) -> str | None:
    """The suppression reason of an address, or None when it may be sent to."""
    sup = suppression_table.c
    with engine.connect() as c:
        return c.execute(select(sup.reason).where(sup.email == email)).scalar()


def preferences(engine: Engine, *, subscriber_id: int) -> SubscriberPreferences | None:
    """A subscriber's frequency and topics (None when the subscriber is gone)."""
    query = select(S.id, S.email, S.status, S.frequency, S.topics).where(S.id == subscriber_id)
    with engine.connect() as c:
        row = c.execute(query).first()
    if row is None:
        return None
    topics = tuple(str(t) for t in row.topics or ())
    return SubscriberPreferences(int(row.id), row.email, row.status, row.frequency, topics)


def known_topics(engine: Engine) -> list[str]:
    """Every topic some item carries (from ``item_topic``), sorted."""
    with engine.connect() as c:
        return [str(r[0]) for r in c.execute(select(IT.topic).distinct().order_by(IT.topic))]


def update_preferences(
    engine: Engine, *, subscriber_id: int, frequency: str, topics: Sequence[str], now: datetime
) -> bool:
    """Store a subscriber's frequency and topics; False when the subscriber is gone.

    Stamps ``preferences_set_at``: from then on no sync or import changes them (the subscriber
    owns them, see ``newsletter.store.upsert``).
    """
    values = {"frequency": frequency, "topics": list(topics)}
    with engine.begin() as c:
        done = c.execute(
            update(subscriber_table)
            .where(S.id == subscriber_id)
            .values(**values, preferences_set_at=now, updated_at=now)
        ).rowcount
    return bool(done)


def template_name(engine: Engine, *, message_id: int) -> str | None:
    """The template name of the campaign a message belongs to (None: message gone)."""
    query = (
        select(C.template_name)
        .select_from(message_table.join(run_table, R.id == M.run_id))
        .join(campaign_table, C.id == R.campaign_id)
        .where(M.id == message_id)
    )
    with engine.connect() as c:
        return c.execute(query).scalar()
