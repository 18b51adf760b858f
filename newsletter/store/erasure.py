"""Erase a subscriber's personal data (GDPR art. 17) while keeping anonymous aggregates.

Erasure keeps the row, so that anonymous aggregates (messages per arm, clicks per item,
interaction counts) still add up, but removes every personal datum: e-mail, name, key,
attributes, topics, the user agent and IP of every event, message subjects and errors. The
address is kept only as a SHA-256 digest on the suppression list; when any source later
loads the same address again, ``resuppress_erased`` puts it back on the list, so it is
never mailed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, delete, insert, select, update

from newsletter.models import SubscriberStatus
from newsletter.store.dialect import dialect_insert
from newsletter.tables import event_table, message_table, subscriber_table, suppression_table

S = subscriber_table.c
E = event_table.c
M = message_table.c
SUP = suppression_table.c
SUP_TABLE = suppression_table
ERASED_DOMAIN = "erased.invalid"
ERASED_REASON = "erased"


def address_digest(email: str) -> str:
    """How an erased address is kept on the suppression list: ``sha256:`` + hex digest."""
    return "sha256:" + hashlib.sha256(email.strip().lower().encode("utf-8")).hexdigest()


def _insert_ignore(c: Connection, rows: list[dict[str, Any]]) -> None:
    c.execute(dialect_insert(c, table=SUP_TABLE).on_conflict_do_nothing(), rows)


def resuppress_erased(c: Connection, *, emails: Sequence[str], now: datetime) -> int:
    """Suppress again every address in ``emails`` that was erased before; returns how many."""
    digests = {address_digest(e): e for e in emails}
    if not digests:
        return 0
    found = c.execute(
        select(SUP.email).where(SUP.email.in_(list(digests)), SUP.reason == ERASED_REASON)
    ).scalars()
    rows = [{"email": digests[d], "reason": ERASED_REASON, "created_at": now} for d in found]
    if rows:
        _insert_ignore(c, rows)
    return len(rows)


def erase_subscriber(engine: Engine, *, key: str, now: datetime) -> bool:
    """Erase the personal data of subscriber ``key``; False when no such subscriber exists."""
    with engine.begin() as c:
        row = c.execute(select(S.id, S.email).where(S.external_key == key)).first()
        if row is None:
            return False
        sid, email = int(row.id), str(row.email)
        c.execute(delete(SUP_TABLE).where(SUP.email == email))
        digest = address_digest(email)
        if c.execute(select(SUP.id).where(SUP.email == digest)).first() is None:
            c.execute(insert(SUP_TABLE).values(email=digest, reason=ERASED_REASON, created_at=now))
        c.execute(
            update(subscriber_table)
            .where(S.id == sid)
            .values(
                external_key=None,
                email=f"erased-{sid}@{ERASED_DOMAIN}",
                name=None,
                status=SubscriberStatus.erased,
                locale=None,
                topics=[],
                attributes={},
                updated_at=now,
            )
        )
        c.execute(
            update(event_table).where(E.subscriber_id == sid).values(user_agent=None, ip=None)
        )
        c.execute(
            update(message_table).where(M.subscriber_id == sid).values(subject=None, error=None)
        )
    return True
