"""The SQL delivery needs: claim, mark sending/sent/failed/skipped, bounces, reconcile, counts.

Every status change is one conditional UPDATE in its own short transaction (``WHERE status =
'planned'`` to claim, ``WHERE status = 'sending'`` to record an outcome), so two workers on
the same shard can never both send a message, and a record from a stale worker is a no-op.
``mark_sending`` re-checks the subscriber's status and the suppression list in the same
transaction, so an unsubscribe that lands during a run stops the not-yet-sent message.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from newsletter.models import SubscriberStatus
from newsletter.tables import (
    campaign_table,
    message_table,
    run_table,
    subscriber_table,
    suppression_table,
    table_of,
)

M = message_table.c
S = subscriber_table.c
SUP = suppression_table.c
R = run_table.c
CLAIMABLE = ("planned", "rendered")
STATUS_REASONS = ("unsubscribed", "bounced", "complained")
UNKNOWN_AFTER_CRASH = "unknown_after_crash"
RETRYABLE = ("transient",)


@dataclass(frozen=True)
class Claim:
    """The outcome of trying to mark a message ``sending``: claimed, skipped (why) or lost."""

    status: str  # sending | skipped | taken
    reason: str | None = None


@dataclass
class RunCounts:
    """Messages of a run by status, skipped ones by reason, failed ones by reason."""

    by_status: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    failed: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.by_status.values())


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


def _stop_reason(c: Connection, message_id: int) -> str | None:
    """Why the message's recipient may no longer be emailed (status first), else None."""
    row = c.execute(
        select(S.status, SUP.reason)
        .select_from(message_table.join(subscriber_table, S.id == M.subscriber_id))
        .outerjoin(suppression_table, SUP.email == S.email)
        .where(M.id == message_id)
    ).first()
    if row is None:
        return None
    status, suppressed = row
    if status != "active":
        return str(status)
    if suppressed:
        return str(suppressed) if suppressed in STATUS_REASONS else "suppressed"
    return None


def _claim_statements() -> tuple[Any, Any]:
    """The hot-path UPDATEs, built once (bound parameters; no IN lists to expand)."""
    table = message_table
    mid: Any = bindparam("mid")
    now: Any = bindparam("now")
    claimable = (M.id == mid) & or_(*(M.status == s for s in CLAIMABLE))
    eligible = (
        select(S.id)
        .where(S.id == M.subscriber_id, S.status == "active")
        .where(~select(SUP.id).where(SUP.email == S.email).exists())
        .exists()
    )
    claim = (
        update(table)
        .where(claimable, eligible)
        .values(status="sending", attempts=M.attempts + 1, updated_at=now)
    )
    sent = (  # the reason stays: `why` tells that a sent message was deferred by quiet hours
        update(table)
        .where(M.id == mid, M.status == "sending")
        .values(
            status="sent", sent_at=now, updated_at=now, subject=bindparam("subject"), error=None
        )
    )
    return claim, sent


_CLAIM, _SENT = _claim_statements()


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
        reason = _stop_reason(c, message_id)
        if reason is None:
            return Claim("taken")
        done = c.execute(
            update(message_table)
            .where(M.id == message_id, M.status.in_(CLAIMABLE))
            .values(status="skipped", reason=reason, updated_at=now)
        ).rowcount
    return Claim("skipped", reason) if done else Claim("taken")


def defer_message(
    engine: Engine, *, message_id: int, until: datetime, reason: str, now: datetime
) -> bool:
    """Move a claimable message's send time on to `until` (e.g. the end of quiet hours)."""
    with engine.begin() as c:
        query = update(message_table).where(M.id == message_id, M.status.in_(CLAIMABLE))
        done = c.execute(query.values(planned_for=until, reason=reason, updated_at=now)).rowcount
    return bool(done)


def _set_from_sending(c: Connection, message_id: int, **values: object) -> bool:
    query = update(message_table).where(M.id == message_id, M.status == "sending")
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
            c, message_id, status="planned", error=error[:2000], attempts=attempts, updated_at=now
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
            query.values(status="failed", reason=reason, error=error[:2000], updated_at=now)
        ).rowcount
    return bool(done)


def _insert(c: Connection, table: object) -> object:
    dialect = postgresql if c.dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


def record_bounce(engine: Engine, *, message_id: int, error: str, now: datetime) -> bool:
    """A 5xx for the recipient: message failed 'bounced', subscriber bounced, address suppressed.

    All three in one transaction; the subscriber keeps a stronger status (unsubscribed,
    complained) and an existing suppression row keeps its reason.
    """
    with engine.begin() as c:
        if not _set_from_sending(
            c, message_id, status="failed", reason="bounced", error=error[:2000], updated_at=now
        ):
            return False
        sid = c.execute(select(M.subscriber_id).where(M.id == message_id)).scalar_one()
        c.execute(
            update(subscriber_table)
            .where(S.id == sid, S.status == SubscriberStatus.active)
            .values(status=SubscriberStatus.bounced, status_changed_at=now, updated_at=now)
        )
        email = c.execute(select(S.email).where(S.id == sid)).scalar_one()
        insert = _insert(c, suppression_table)
        c.execute(
            insert.values(email=email, reason="bounced", created_at=now).on_conflict_do_nothing()  # type: ignore[attr-defined]
        )
    return True


def sending_ids(engine: Engine, *, run_id: int, shard: int | None = None) -> list[int]:
    """Messages left in ``sending`` (their outcome is unknown after a crash)."""
    query = select(M.id).where(M.run_id == run_id, M.status == "sending")
    if shard is not None:
        query = query.where(M.shard == shard)
    with engine.connect() as c:
        return [int(r[0]) for r in c.execute(query.order_by(M.id))]


def reconcile_sending(
    engine: Engine, *, run_id: int, resend: bool, now: datetime, shard: int | None = None
) -> int:
    """Settle every ``sending`` message of a run (or of one shard): back to planned (resend)
    or failed (unknown)."""
    query = update(message_table).where(M.run_id == run_id, M.status == "sending")
    if shard is not None:
        query = query.where(M.shard == shard)
    if resend:
        query = query.values(status="planned", updated_at=now)
    else:
        query = query.values(
            status="failed",
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
        M.run_id == run_id, M.status == "failed", M.reason.in_(list(reasons))
    )
    with engine.begin() as c:
        return int(
            c.execute(
                query.values(status="planned", attempts=0, reason=None, updated_at=now)
            ).rowcount
        )


def message_attempts(engine: Engine, *, message_id: int) -> int:
    with engine.connect() as c:
        return int(c.execute(select(M.attempts).where(M.id == message_id)).scalar_one())


def run_counts(engine: Engine, *, run_id: int) -> RunCounts:
    """Count a run's messages by status, and skipped/failed ones by reason."""
    with engine.connect() as c:
        rows = c.execute(
            select(M.status, M.reason, func.count())
            .where(M.run_id == run_id)
            .group_by(M.status, M.reason)
        ).all()
    status: Counter[str] = Counter()
    skipped: Counter[str] = Counter()
    failed: Counter[str] = Counter()
    for st, reason, n in rows:
        status[str(st)] += int(n)
        if st == "skipped":
            skipped[reason or "unknown"] += int(n)
        elif st == "failed":
            failed[reason or "unknown"] += int(n)
    return RunCounts(
        dict(sorted(status.items())), dict(sorted(skipped.items())), dict(sorted(failed.items()))
    )


def waiting(engine: Engine, *, run_id: int, due_by: datetime) -> tuple[int, datetime | None]:
    """Planned messages whose send time is after `due_by`: how many, and the earliest time."""
    with engine.connect() as c:
        count, earliest = c.execute(
            select(func.count(), func.min(M.planned_for)).where(
                M.run_id == run_id, M.status.in_(CLAIMABLE), M.planned_for > due_by
            )
        ).one()
    return int(count), earliest


def run_campaign_id(engine: Engine, *, run_id: int) -> int | None:
    """The campaign of a run, or None when the run does not exist."""
    with engine.connect() as c:
        found = c.execute(select(R.campaign_id).where(R.id == run_id)).scalar()
    return None if found is None else int(found)


def set_run_status(
    engine: Engine, *, run_id: int, status: str, now: datetime, finished: bool = False
) -> bool:
    """Set a run's status (delivering, delivered, paused); stamp finished_at when finished.

    A person's ``held`` or ``cancelled`` stands: such a run is left alone (False)."""
    values: dict[str, object] = {"status": status}
    if finished:
        values["finished_at"] = now
    query = update(run_table).where(R.id == run_id, R.status.not_in(("held", "cancelled")))
    with engine.begin() as c:
        return bool(c.execute(query.values(**values)).rowcount)


def run_campaign_config(engine: Engine, *, run_id: int) -> tuple[str, dict[str, Any]] | None:
    """The name and config of the campaign a run belongs to, or None for an unknown run."""

    c_ = campaign_table.c
    with engine.connect() as c:
        found = c.execute(
            select(c_.name, c_.config).join(run_table, R.campaign_id == c_.id).where(R.id == run_id)
        ).first()
    return None if found is None else (str(found.name), dict(found.config or {}))


def run_template_name(engine: Engine, *, run_id: int) -> str | None:
    """The template name of the campaign a run belongs to, or None for an unknown run."""

    c_ = campaign_table.c
    with engine.connect() as c:
        found = c.execute(
            select(c_.template_name).join(run_table, R.campaign_id == c_.id).where(R.id == run_id)
        ).scalar()
    return None if found is None else str(found)


@dataclass
class RenderRows:
    """The rows one batch of messages needs for rendering, fetched in three queries."""

    messages: dict[int, Any]  # message id -> row (arm, subscriber_*, run_*, campaign_*)
    slots: dict[int, list[Any]]  # message id -> slot rows by position
    items: dict[int, Any]  # item id -> row (id, title, url, image_url, summary, topics)


def render_rows(engine: Engine, *, message_ids: Sequence[int]) -> RenderRows:
    """Message, subscriber, run, campaign, slot and item rows of a batch of messages."""
    from newsletter.models import Campaign, Item, Slot

    ca, it, sl = (table_of(t).c for t in (Campaign, Item, Slot))
    ids = [int(i) for i in message_ids]
    with engine.connect() as c:
        heads = c.execute(
            select(
                M.id,
                M.arm,
                S.id.label("subscriber_id"),
                S.email,
                S.name,
                S.timezone,
                S.attributes,
                R.id.label("run_id"),
                R.scheduled_for,
                ca.id.label("campaign_id"),
                ca.name.label("campaign_name"),
                ca.kind.label("campaign_kind"),
                ca.config.label("campaign_config"),
            )
            .join(subscriber_table, S.id == M.subscriber_id)
            .join(run_table, R.id == M.run_id)
            .join(campaign_table, ca.id == R.campaign_id)
            .where(M.id.in_(ids))
        ).all()
        slot_rows = c.execute(
            select(
                sl.message_id,
                sl.position,
                sl.section,
                sl.item_id,
                sl.source,
                sl.reason_kind,
                sl.reason_text,
                sl.reason_anchor,
            )
            .where(sl.message_id.in_(ids))
            .order_by(sl.message_id, sl.position)
        ).all()
        wanted = sorted({int(r.item_id) for r in slot_rows})
        items = (
            c.execute(
                select(it.id, it.title, it.url, it.image_url, it.summary, it.topics).where(
                    it.id.in_(wanted)
                )
            ).all()
            if wanted
            else []
        )
    slots: dict[int, list[Any]] = {i: [] for i in ids}
    for row in slot_rows:
        slots[int(row.message_id)].append(row)
    return RenderRows({int(r.id): r for r in heads}, slots, {int(r.id): r for r in items})
