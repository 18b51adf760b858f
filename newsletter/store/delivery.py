"""The SQL delivery needs: claim, mark sending/sent/failed/skipped, bounces, reconcile, counts.

Every status change is one conditional UPDATE in its own short transaction (``WHERE status =
'planned'`` to claim, ``WHERE status = 'sending'`` to record an outcome), so two workers on
the same shard can never both send a message, and a record from a stale worker is a no-op.
``mark_sending`` re-checks the subscriber's status and the suppression list in the same
transaction, so an unsubscribe that lands during a run stops the not-yet-sent message.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, or_, select, update

from newsletter.enums import MessageStatus
from newsletter.models import RunStatus, SubscriberStatus
from newsletter.store.dialect import dialect_insert
from newsletter.store.run_delivery import RunCounts as RunCounts
from newsletter.store.run_delivery import run_campaign_config as run_campaign_config
from newsletter.store.run_delivery import run_campaign_id as run_campaign_id
from newsletter.store.run_delivery import run_counts as run_counts
from newsletter.store.run_delivery import run_template_name as run_template_name
from newsletter.store.run_delivery import set_run_status as set_run_status
from newsletter.store.run_delivery import waiting as waiting
from newsletter.tables import message_table, run_table, subscriber_table, suppression_table

M = message_table.c
S = subscriber_table.c
SUP = suppression_table.c
R = run_table.c
CLAIMABLE = (MessageStatus.planned, MessageStatus.rendered)
STATUS_REASONS = ("unsubscribed", "bounced", "complained")
UNKNOWN_AFTER_CRASH = "unknown_after_crash"
RETRYABLE = ("transient",)


@dataclass(frozen=True)
class Claim:
    """The outcome of trying to mark a message ``sending``: claimed, skipped (why) or lost."""

    status: str  # sending | skipped | taken
    reason: str | None = None


def planned_ids(
    engine: Engine,
    *,
    run_id: int,
    shard: int | None,
    after_id: int = 0,
    limit: int = 500,
    due_by: datetime | None = None,
) -> list[int]:
    """Ids of claimable messages of a run (one shard, or all when None), ascending.

    With `due_by`, only messages whose send time (planned_for) has come by then.
    """
    query = select(M.id).where(M.run_id == run_id, M.status.in_(CLAIMABLE), M.id > after_id)
    if shard is not None:
        query = query.where(M.shard == shard)
    if due_by is not None:
        query = query.where(M.planned_for <= due_by)
    with engine.connect() as c:
        return [int(r[0]) for r in c.execute(query.order_by(M.id).limit(limit))]


def run_shards(engine: Engine, *, run_id: int) -> list[int]:
    """The shard numbers that hold messages of a run."""
    with engine.connect() as c:
        rows = c.execute(select(M.shard).where(M.run_id == run_id).distinct().order_by(M.shard))
        return [int(r[0]) for r in rows]


def _claim_statements() -> tuple[Any, Any, Any]:
    """The hot-path UPDATEs, built once (bound parameters; no IN lists to expand)."""
    table = message_table
    mid: Any = bindparam("mid")
    now: Any = bindparam("now")
    claimable = (M.id == mid) & or_(*(M.status == s for s in CLAIMABLE))
    eligible = (
        select(S.id)
        .where(S.id == M.subscriber_id, S.status == SubscriberStatus.active)
        .where(~select(SUP.id).where(SUP.email == S.email).exists())
        .exists()
    )
    claim = (
        update(table)
        .where(claimable, eligible)
        .values(status=MessageStatus.sending, attempts=M.attempts + 1, updated_at=now)
    )
    sent = (  # the reason stays: `why` tells that a sent message was deferred by quiet hours
        update(table)
        .where(M.id == mid, M.status == MessageStatus.sending)
        .values(
            status=MessageStatus.sent,
            sent_at=now,
            updated_at=now,
            subject=bindparam("subject"),
            error=None,
        )
    )
    many = (
        update(table)
        .where(M.id.in_(bindparam("ids", expanding=True)), M.status.in_(CLAIMABLE), eligible)
        .values(status=MessageStatus.sending, attempts=M.attempts + 1, updated_at=now)
        .returning(M.id)
    )
    return claim, sent, many


_CLAIM, _SENT, _CLAIM_MANY = _claim_statements()


def mark_sending(engine: Engine, *, message_id: int, now: datetime) -> Claim:
    """Claim a planned message for one SMTP transaction, or skip it if its recipient left.

    One committed conditional UPDATE: ``status='sending', attempts=attempts+1`` where the
    message is still planned, its subscriber still active and their address not suppressed.
    When it matches nothing, a second transaction tells why: the recipient left (the message
    becomes ``skipped`` with the reason) or another worker moved the message on (``taken``).
    """
    with engine.begin() as c:
        if c.execute(_CLAIM, {"mid": message_id, "now": now}).rowcount:
            return Claim("sending")
    with engine.begin() as c:
        reason = _stop_reasons(c, [message_id]).get(message_id)
        if reason is None:
            return Claim("taken")
        done = c.execute(
            update(message_table)
            .where(M.id == message_id, M.status.in_(CLAIMABLE))
            .values(status=MessageStatus.skipped, reason=reason, updated_at=now)
        ).rowcount
    return Claim("skipped", reason) if done else Claim("taken")


def _stop_reasons(c: Connection, message_ids: Sequence[int]) -> dict[int, str]:
    """Why each message's recipient may no longer be emailed (status first); absent: no reason."""
    rows = c.execute(
        select(M.id, S.status, SUP.reason)
        .select_from(message_table.join(subscriber_table, S.id == M.subscriber_id))
        .outerjoin(suppression_table, SUP.email == S.email)
        .where(M.id.in_(list(message_ids)))
    ).all()
    out: dict[int, str] = {}
    for mid, status, suppressed in rows:
        if status != SubscriberStatus.active:
            out[int(mid)] = str(status)
        elif suppressed:
            out[int(mid)] = str(suppressed) if suppressed in STATUS_REASONS else "suppressed"
    return out


def _skip(c: Connection, reasons: dict[int, str], now: datetime) -> dict[int, str]:
    """Mark claimable messages ``skipped`` with their reason; those actually skipped."""
    done: dict[int, str] = {}
    for reason in sorted(set(reasons.values())):
        ids = [mid for mid, r in reasons.items() if r == reason]
        query = update(message_table).where(M.id.in_(ids), M.status.in_(CLAIMABLE))
        for row in c.execute(
            query.values(status=MessageStatus.skipped, reason=reason, updated_at=now).returning(
                M.id
            )
        ):
            done[int(row[0])] = reason
    return done


@dataclass(frozen=True)
class BatchClaim:
    """A batch claim: the ids now ``sending`` (in the order asked), and those skipped (why);
    the rest were taken by another worker."""

    claimed: list[int]
    skipped: dict[int, str]


def claim_many(engine: Engine, *, message_ids: Sequence[int], now: datetime) -> BatchClaim:
    """Claim a batch of planned messages for sending in ONE committed transaction.

    The same conditional UPDATE as :func:`mark_sending` for a whole batch (still planned,
    subscriber still active, address not suppressed; ``attempts + 1``); in the same
    transaction the unclaimed ones whose recipient left become ``skipped`` with the reason.
    Every claimed message is in the crash window until its outcome is recorded.
    """
    ids = [int(i) for i in message_ids]
    if not ids:
        return BatchClaim([], {})
    with engine.begin() as c:
        got = {int(r[0]) for r in c.execute(_CLAIM_MANY, {"ids": ids, "now": now})}
        rest = [i for i in ids if i not in got]
        skipped = _skip(c, _stop_reasons(c, rest), now) if rest else {}
    return BatchClaim([i for i in ids if i in got], skipped)


def record_sent(engine: Engine, *, sent: Sequence[tuple[int, str | None, datetime]]) -> list[int]:
    """Record the server's 250 for a batch of ``sending`` messages in ONE transaction.

    ``sent`` holds (message id, subject, time of the 250); returns the ids recorded (a
    message no longer ``sending`` -- a stale worker's -- is left alone). One prepared UPDATE
    run for every row (executemany), so the statement is compiled once, not per batch.
    """
    if not sent:
        return []
    ids = [int(mid) for mid, _, _ in sent]
    with engine.begin() as c:
        live = {
            int(r[0])
            for r in c.execute(select(M.id).where(M.id.in_(ids), M.status == MessageStatus.sending))
        }
        rows = [
            {"mid": int(mid), "subject": subject, "now": at}
            for mid, subject, at in sent
            if int(mid) in live
        ]
        if rows:
            c.execute(_SENT, rows)
    return [mid for mid in ids if mid in live]


def release_claims(engine: Engine, *, message_ids: Sequence[int], now: datetime) -> int:
    """Give claimed messages that were never handed to the transport back (attempt returned):
    a batch cut short by a pause or a hold goes back to ``planned``; in a cancelled run they
    become ``skipped``/``cancelled``, as the cancel did to every other unsent message."""
    ids = [int(i) for i in message_ids]
    if not ids:
        return 0
    mine = update(message_table).where(M.id.in_(ids), M.status == MessageStatus.sending)
    back = M.attempts - 1
    with engine.begin() as c:
        cancelled = {
            int(r[0])
            for r in c.execute(
                select(M.id)
                .join(run_table, R.id == M.run_id)
                .where(M.id.in_(ids), R.status == RunStatus.cancelled)
            )
        }
        done = c.execute(
            mine.where(M.id.not_in(cancelled)).values(
                status=MessageStatus.planned, attempts=back, updated_at=now
            )
        ).rowcount
        if cancelled:
            done += c.execute(
                mine.where(M.id.in_(cancelled)).values(
                    status=MessageStatus.skipped, reason="cancelled", attempts=back, updated_at=now
                )
            ).rowcount
    return int(done)


def defer_message(
    engine: Engine, *, message_id: int, until: datetime, reason: str, now: datetime
) -> bool:
    """Move a claimable message's send time on to `until` (e.g. the end of quiet hours)."""
    with engine.begin() as c:
        query = update(message_table).where(M.id == message_id, M.status.in_(CLAIMABLE))
        done = c.execute(query.values(planned_for=until, reason=reason, updated_at=now)).rowcount
    return bool(done)


def _set_from_sending(c: Connection, message_id: int, **values: object) -> bool:
    query = update(message_table).where(M.id == message_id, M.status == MessageStatus.sending)
    return bool(c.execute(query.values(**values)).rowcount)


def mark_sent(engine: Engine, *, message_id: int, subject: str | None, now: datetime) -> bool:
    """Record the server's 250 for a ``sending`` message (False: it was not ``sending``)."""
    with engine.begin() as c:
        return bool(c.execute(_SENT, {"mid": message_id, "now": now, "subject": subject}).rowcount)


def mark_retry(
    engine: Engine, *, message_id: int, error: str, now: datetime, count: bool = True
) -> bool:
    """Put a ``sending`` message back to ``planned`` after a transient failure.

    ``count=False`` gives the attempt back (a connect failure is about our server, not it).
    """
    attempts = M.attempts if count else M.attempts - 1
    with engine.begin() as c:
        return _set_from_sending(
            c,
            message_id,
            status=MessageStatus.planned,
            error=error[:2000],
            attempts=attempts,
            updated_at=now,
        )


def mark_failed(
    engine: Engine,
    *,
    message_id: int,
    reason: str,
    error: str,
    now: datetime,
    from_status: Sequence[str] = ("sending",),
) -> bool:
    """Record a final failure with its reason (transient, rejected, render_error…)."""
    with engine.begin() as c:
        query = update(message_table).where(M.id == message_id, M.status.in_(from_status))
        done = c.execute(
            query.values(
                status=MessageStatus.failed, reason=reason, error=error[:2000], updated_at=now
            )
        ).rowcount
    return bool(done)


def record_bounce(engine: Engine, *, message_id: int, error: str, now: datetime) -> bool:
    """A 5xx for the recipient: message failed 'bounced', subscriber bounced, address suppressed.

    All three in one transaction; the subscriber keeps a stronger status (unsubscribed,
    complained) and an existing suppression row keeps its reason.
    """
    with engine.begin() as c:
        if not _set_from_sending(
            c,
            message_id,
            status=MessageStatus.failed,
            reason="bounced",
            error=error[:2000],
            updated_at=now,
        ):
            return False
        sid = c.execute(select(M.subscriber_id).where(M.id == message_id)).scalar_one()
        c.execute(
            update(subscriber_table)
            .where(S.id == sid, S.status == SubscriberStatus.active)
            .values(status=SubscriberStatus.bounced, status_changed_at=now, updated_at=now)
        )
        email = c.execute(select(S.email).where(S.id == sid)).scalar_one()
        insert = dialect_insert(c, table=suppression_table)
        c.execute(
            insert.values(email=email, reason="bounced", created_at=now).on_conflict_do_nothing()
        )
    return True


def sending_ids(engine: Engine, *, run_id: int, shard: int | None = None) -> list[int]:
    """Messages left in ``sending`` (their outcome is unknown after a crash)."""
    query = select(M.id).where(M.run_id == run_id, M.status == MessageStatus.sending)
    if shard is not None:
        query = query.where(M.shard == shard)
    with engine.connect() as c:
        return [int(r[0]) for r in c.execute(query.order_by(M.id))]


def reconcile_sending(
    engine: Engine, *, run_id: int, resend: bool, now: datetime, shard: int | None = None
) -> int:
    """Settle every ``sending`` message of a run (or of one shard): back to planned (resend)
    or failed (unknown)."""
    query = update(message_table).where(M.run_id == run_id, M.status == MessageStatus.sending)
    if shard is not None:
        query = query.where(M.shard == shard)
    if resend:
        query = query.values(status=MessageStatus.planned, updated_at=now)
    else:
        query = query.values(
            status=MessageStatus.failed,
            reason=UNKNOWN_AFTER_CRASH,
            updated_at=now,
            error="the process stopped during the SMTP transaction",
        )
    with engine.begin() as c:
        return int(c.execute(query).rowcount)


def requeue_failed(
    engine: Engine, *, run_id: int, reasons: Iterable[str] = RETRYABLE, now: datetime
) -> int:
    """Move failed messages with one of ``reasons`` back to planned, attempts reset."""
    query = update(message_table).where(
        M.run_id == run_id, M.status == MessageStatus.failed, M.reason.in_(list(reasons))
    )
    with engine.begin() as c:
        return int(
            c.execute(
                query.values(status=MessageStatus.planned, attempts=0, reason=None, updated_at=now)
            ).rowcount
        )


def message_attempts(engine: Engine, *, message_id: int) -> int:
    with engine.connect() as c:
        return int(c.execute(select(M.attempts).where(M.id == message_id)).scalar_one())
