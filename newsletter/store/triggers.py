"""The SQL of behavioural triggers: reads around new behaviour, pending states, claims.

(The cursors over new rows are in :mod:`newsletter.store.trigger_cursor`.) A subscriber's
reads are ``read`` interactions and their human clicks on items in messages (the tracking
service's ``event`` rows not flagged machine). States are unique per (campaign, subscriber,
dedupe): evaluating the same behaviour twice stores it once. A firing claims its states with
a conditional UPDATE in the transaction that writes its messages, so two sweeping processes
never answer one state twice.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy import Connection, Engine, func, select, update

from newsletter.enums import ArtifactKind, TriggerKind
from newsletter.models import (
    Campaign,
    Run,
    TriggerStatus,
)
from newsletter.store.dialect import dialect_insert
from newsletter.store.planning import write_frames
from newsletter.tables import (
    campaign_table,
    event_table,
    interaction_table,
    item_topic_table,
    message_table,
    run_artifact_table,
    run_table,
    subscriber_table,
    trigger_state_table,
)

T = trigger_state_table.c
I = interaction_table.c  # noqa: E741
S = subscriber_table.c
C = campaign_table.c
IT = item_topic_table.c
M = message_table.c
E = event_table.c
CHUNK = 5000


@dataclass(frozen=True)
class StateRow:
    """A stored trigger state."""

    id: int
    campaign: str
    subscriber_id: int
    dedupe: str
    kind: str
    status: str
    due_at: datetime
    context: dict[str, Any]
    run_id: int | None
    reason: str | None


def trigger_campaigns(engine: Engine) -> list[Campaign]:
    """The active campaigns of kind ``trigger``."""
    with engine.connect() as c:
        rows = c.execute(select(Campaign).where(C.active.is_(True), C.kind == "trigger"))
        return [Campaign.model_validate(r._mapping) for r in rows]


def item_topics(engine: Engine, *, ids: Sequence[int]) -> dict[int, list[str]]:
    """Topics per item id."""
    out: dict[int, list[str]] = defaultdict(list)
    unique = sorted(set(ids))
    with engine.connect() as c:
        for start in range(0, len(unique), CHUNK):
            chunk = unique[start : start + CHUNK]
            for item, topic in c.execute(select(IT.item_id, IT.topic).where(IT.item_id.in_(chunk))):
                out[int(item)].append(str(topic))
    return out


def _reads(subscribers: Sequence[int], start: datetime, end: datetime) -> Any:
    """(subscriber, item, time, id) of ``read`` interactions and human clicks on items in
    [start, end] of `subscribers`."""
    reads = select(I.subscriber_id, I.item_id, I.occurred_at, I.id).where(
        I.subscriber_id.in_(subscribers), I.kind == "read", I.occurred_at.between(start, end)
    )
    clicks = select(E.subscriber_id, E.item_id, E.occurred_at, E.id).where(
        E.subscriber_id.in_(subscribers), E.kind == "click", E.is_machine.is_(False)
    )
    clicks = clicks.where(E.item_id.is_not(None), E.occurred_at.between(start, end))
    return reads.union_all(clicks)


def recent_reads(
    engine: Engine, *, subscriber_ids: Sequence[int], start: datetime, end: datetime
) -> dict[int, list[tuple[int, datetime]]]:
    """Per subscriber: (item id, time) of their reads in [start, end] (``read``
    interactions and human clicks on items in messages), oldest first."""
    out: dict[int, list[tuple[int, datetime]]] = defaultdict(list)
    unique = sorted(set(subscriber_ids))
    with engine.connect() as c:
        for at in range(0, len(unique), CHUNK):
            rows = c.execute(_reads(unique[at : at + CHUNK], start, end)).all()
            for sid, item, when, _ in sorted(rows, key=lambda r: (r[2], r[3])):
                out[int(sid)].append((int(item), when))
    return out


def add_states(engine: Engine, *, rows: Sequence[dict[str, Any]]) -> int:
    """Insert new pending states (a state already stored is left alone); returns rows sent."""
    if not rows:
        return 0
    table = trigger_state_table
    with engine.begin() as c:
        statement = dialect_insert(c, table=table).on_conflict_do_nothing(
            index_elements=["campaign_id", "subscriber_id", "dedupe"]
        )
        c.execute(statement, list(rows))
    return len(rows)


def cancel_carts(
    engine: Engine,
    *,
    purchases: Sequence[tuple[int, int, datetime]],
    delay_seconds: float,
    now: datetime,
) -> int:
    """Cancel pending cart states of (subscriber, item) whose cart time lies within
    ``delay`` before the purchase (the "unless" of the abandoned-cart rule)."""
    from datetime import timedelta

    table = trigger_state_table
    done = 0
    with engine.begin() as c:
        for subscriber_id, item_id, at in purchases:
            result = c.execute(
                update(table)
                .where(
                    T.subscriber_id == subscriber_id,
                    T.status == TriggerStatus.pending,
                    T.kind == TriggerKind.abandoned_cart,
                    T.dedupe.like(f"cart:{item_id}:%"),
                    T.due_at >= at,
                    T.due_at <= at + timedelta(seconds=delay_seconds),
                )
                .values(status=TriggerStatus.cancelled, reason="purchased", updated_at=now)
            )
            done += int(result.rowcount or 0)
    return done


def due_states(engine: Engine, *, campaign_id: int, now: datetime, limit: int) -> list[StateRow]:
    """Pending states of a campaign whose due time has come, oldest first."""
    return _states(
        engine,
        lambda q: (
            q.where(
                T.campaign_id == campaign_id, T.status == TriggerStatus.pending, T.due_at <= now
            )
            .order_by(T.due_at, T.id)
            .limit(limit)
        ),
    )


def states(
    engine: Engine, *, status: str | None = None, subscriber_id: int | None = None, limit: int = 200
) -> list[StateRow]:
    """Stored states (newest due first), optionally of one status or one subscriber."""

    def where(q: Any) -> Any:
        if status is not None:
            q = q.where(T.status == status)
        if subscriber_id is not None:
            q = q.where(T.subscriber_id == subscriber_id)
        return q.order_by(T.due_at.desc(), T.id.desc()).limit(limit)

    return _states(engine, where)


def _states(engine: Engine, shape: Any) -> list[StateRow]:
    query = select(
        T.id, C.name, T.subscriber_id, T.dedupe, T.kind, T.status, T.due_at, T.context
    ).add_columns(T.run_id, T.reason)
    query = query.join(campaign_table, C.id == T.campaign_id)
    with engine.connect() as c:
        rows = c.execute(shape(query)).all()
    return [
        StateRow(
            int(r[0]), str(r[1]), int(r[2]), r[3], r[4], r[5], r[6], dict(r[7] or {}), r[8], r[9]
        )
        for r in rows
    ]


def last_answered(
    engine: Engine, *, campaign_id: int, subscriber_ids: Sequence[int], since: datetime
) -> dict[int, datetime]:
    """Per subscriber: when this campaign last answered them with a planned message."""
    out: dict[int, datetime] = {}
    unique = sorted(set(subscriber_ids))
    with engine.connect() as c:
        for at in range(0, len(unique), CHUNK):
            query = (
                select(T.subscriber_id, func.max(T.updated_at))
                .where(T.campaign_id == campaign_id, T.subscriber_id.in_(unique[at : at + CHUNK]))
                .where(T.status == TriggerStatus.fired, T.reason.is_(None), T.updated_at >= since)
                .group_by(T.subscriber_id)
            )
            out.update((int(s), when) for s, when in c.execute(query))
    return out


def fire_states(
    engine: Engine,
    *,
    run_id: int,
    reasons: dict[int, str | None],
    messages: pd.DataFrame,
    slots: pd.DataFrame,
    assignments: pd.DataFrame,
    now: datetime,
) -> int:
    """Claim the pending states `reasons` (state id -> skip reason or None) and write the
    messages of the subscribers whose states this process claimed, in one transaction."""
    table = trigger_state_table
    claimed: set[int] = set()
    with engine.begin() as c:
        for reason in set(reasons.values()):
            ids = [i for i, r in reasons.items() if r == reason]
            result = c.execute(
                update(table)
                .where(T.id.in_(ids), T.status == TriggerStatus.pending)
                .values(status=TriggerStatus.fired, run_id=run_id, reason=reason, updated_at=now)
                .returning(T.subscriber_id)
            )
            claimed.update(int(r[0]) for r in result)
        mine = messages[messages["subscriber_id"].isin(claimed)]
        return write_frames(
            c,
            run_id=run_id,
            messages=mine,
            slots=slots[slots["subscriber_id"].isin(claimed)],
            assignments=assignments[assignments["subscriber_id"].isin(claimed)],
        )


def message_trigger(connection: Connection, *, run_id: int, subscriber_id: int) -> dict[str, Any]:
    """The context of the state(s) a message answers (topic, label, step...), merged."""
    rows = connection.execute(
        select(T.kind, T.context)
        .where(T.run_id == run_id, T.subscriber_id == subscriber_id)
        .order_by(T.due_at)
    ).all()
    out: dict[str, Any] = {}
    for kind, context in rows:
        out.update({"kind": kind, **dict(context or {})})
    return out


def latest_run_with_message(
    engine: Engine, *, campaign_id: int, subscriber_id: int, at: datetime | None
) -> Run | None:
    """The newest run of a campaign (at or before `at`) that holds a message for them."""
    R = run_table.c
    query = (
        select(Run)
        .join(message_table, M.run_id == R.id)
        .where(R.campaign_id == campaign_id, M.subscriber_id == subscriber_id)
    )
    if at is not None:
        query = query.where(R.scheduled_for <= at)
    with engine.connect() as c:
        row = c.execute(query.order_by(R.scheduled_for.desc())).first()
    return Run.model_validate(row._mapping) if row else None


def recent_model_run(
    engine: Engine, *, campaign_id: int, since: datetime
) -> tuple[int, datetime] | None:
    """The newest run of a campaign whose fitted model was stored at or after `since`."""

    A = run_artifact_table.c
    R = run_table.c
    with engine.connect() as c:
        row = c.execute(
            select(A.run_id, A.created_at)
            .join(run_table, R.id == A.run_id)
            .where(
                R.campaign_id == campaign_id, A.kind == ArtifactKind.model, A.created_at >= since
            )
            .order_by(A.created_at.desc())
            .limit(1)
        ).first()
    return None if row is None else (int(row[0]), row[1])


def subscriber_behaviour(
    engine: Engine, *, subscriber_id: int, start: datetime, end: datetime
) -> list[tuple[int, int, str, datetime]]:
    """(subscriber, item, kind, time) of one subscriber's interactions in [start, end], and
    their human clicks on items as ``read`` s, oldest first."""
    with engine.connect() as c:
        rows = c.execute(
            select(I.subscriber_id, I.item_id, I.kind, I.occurred_at, I.id).where(
                I.subscriber_id == subscriber_id, I.occurred_at.between(start, end)
            )
        ).all()
        clicks = c.execute(_reads([subscriber_id], start, end)).all()
    found = [(int(r[0]), int(r[1]), str(r[2]), r[3], int(r[4])) for r in rows if r[2] != "read"]
    found += [(int(r[0]), int(r[1]), "read", r[2], int(r[3])) for r in clicks]
    return [r[:4] for r in sorted(found, key=lambda r: (r[3], r[4]))]


def subscriber_signup(
    engine: Engine, *, subscriber_id: int
) -> tuple[int, datetime, list[str], str] | None:
    """(id, created_at, topics, status) of one subscriber."""
    with engine.connect() as c:
        r = c.execute(
            select(S.id, S.created_at, S.topics, S.status).where(S.id == subscriber_id)
        ).first()
    return None if r is None else (int(r[0]), r[1], list(r[2] or []), str(r[3]))
