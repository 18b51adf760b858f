"""The SQL the planner needs: campaigns, runs, subscriber profiles, send history, the plan.

Writes are idempotent by the unique constraints: a run is unique per (campaign,
scheduled_for), a message per (run, subscriber), an assignment per (experiment, subscriber).
:func:`write_shard` inserts one shard's messages, slots and assignments in one transaction
and skips subscribers the run already holds, so planning again inserts nothing new.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy import Connection, Engine, case, delete, func, select, update

from newsletter.enums import MessageStatus, RunStatus, SubscriberStatus
from newsletter.models import (
    Campaign,
    Message,
    Run,
    Slot,
)
from newsletter.store.bulk import bulk_insert
from newsletter.store.dialect import dialect_insert
from newsletter.tables import (
    assignment_table,
    campaign_table,
    event_table,
    human_event,
    item_table,
    message_table,
    run_artifact_table,
    run_table,
    segment_table,
    slot_table,
    subscriber_table,
    suppression_table,
)

CHUNK = 5000
LIVE = (MessageStatus.planned, MessageStatus.rendered, MessageStatus.sending, MessageStatus.sent)
M = message_table.c
SL = slot_table.c


@dataclass(frozen=True)
class Profile:
    """What cadence and slots need to know about one subscriber."""

    id: int
    email: str
    status: str
    timezone: str
    frequency: str
    suppressed: str | None


def _chunks(ids: Sequence[int]) -> Iterator[list[int]]:
    for start in range(0, len(ids), CHUNK):
        yield [int(i) for i in ids[start : start + CHUNK]]


def find_campaign(engine: Engine, *, name: str) -> Campaign | None:
    """The campaign called `name`, or None."""
    with engine.connect() as c:
        row = c.execute(select(Campaign).where(Campaign.name == name)).first()  # type: ignore[arg-type]
    return Campaign.model_validate(row._mapping) if row else None


def campaign_names(engine: Engine) -> list[str]:
    with engine.connect() as c:
        t = campaign_table.c
        return [str(r[0]) for r in c.execute(select(t.name).order_by(t.name))]


def segment_source(engine: Engine, *, name: str) -> str | None:
    """The YAML of a segment stored in the database (edited in the UI), or None."""
    with engine.connect() as c:
        t = segment_table.c
        found = c.execute(select(t.definition).where(t.name == name)).scalar()
    return None if found is None else str(found)


def ensure_run(engine: Engine, *, campaign_id: int, scheduled_for: datetime, now: datetime) -> Run:
    """The run of a campaign for one scheduled time, created if it does not exist yet."""
    table = run_table
    with engine.begin() as c:
        c.execute(
            dialect_insert(c, table=table)
            .values(
                campaign_id=campaign_id,
                scheduled_for=scheduled_for,
                status=RunStatus.planning,
                stats={},
                created_at=now,
            )
            .on_conflict_do_nothing(index_elements=["campaign_id", "scheduled_for"])
        )
    found = find_run(engine, campaign_id=campaign_id, scheduled_for=scheduled_for)
    assert found is not None
    return found


def find_run(engine: Engine, *, campaign_id: int, scheduled_for: datetime) -> Run | None:
    with engine.connect() as c:
        row = c.execute(
            select(Run).where(Run.campaign_id == campaign_id, Run.scheduled_for == scheduled_for)  # type: ignore[arg-type]
        ).first()
    return Run.model_validate(row._mapping) if row else None


def latest_run(engine: Engine, *, campaign_id: int, at: datetime | None) -> Run | None:
    """The newest run of a campaign scheduled at or before `at` (any time when None)."""
    query = select(Run).where(Run.campaign_id == campaign_id)  # type: ignore[arg-type]
    if at is not None:
        query = query.where(Run.scheduled_for <= at)  # type: ignore[arg-type]
    with engine.connect() as c:
        row = c.execute(query.order_by(Run.scheduled_for.desc())).first()  # type: ignore[attr-defined]
    return Run.model_validate(row._mapping) if row else None


def profiles(engine: Engine, *, ids: Sequence[int]) -> list[Profile]:
    """Status, timezone, preferences and suppression of the given subscribers, by id."""
    s = subscriber_table.c
    sup = suppression_table.c
    out: list[Profile] = []
    with engine.connect() as c:
        for chunk in _chunks(ids):
            rows = c.execute(
                select(s.id, s.email, s.status, s.timezone, s.frequency, sup.reason)
                .outerjoin(suppression_table, sup.email == s.email)
                .where(s.id.in_(chunk))
                .order_by(s.id)
            ).all()
            out.extend(Profile(*r) for r in rows)
    return out


def subscriber_id(engine: Engine, *, key: str) -> int | None:
    """Find a subscriber by id, email or external key."""
    s = subscriber_table.c
    conditions = [s.email == key, s.external_key == key]
    if key.isdigit():
        conditions.insert(0, s.id == int(key))
    with engine.connect() as c:
        for condition in conditions:
            found = c.execute(select(s.id).where(condition)).scalar()
            if found is not None:
                return int(found)
    return None


def send_times(
    engine: Engine, *, ids: Sequence[int], start: datetime, end: datetime, exclude_run: int
) -> dict[int, list[datetime]]:
    """Times (sent_at, else planned_for) of live messages in [start, end], other runs only."""
    when = func.coalesce(M.sent_at, M.planned_for)
    out: dict[int, list[datetime]] = defaultdict(list)
    with engine.connect() as c:
        for chunk in _chunks(ids):
            query = select(M.subscriber_id, M.sent_at, M.planned_for).where(
                M.subscriber_id.in_(chunk),
                M.status.in_(LIVE),
                M.run_id != exclude_run,
                when >= start,
                when <= end,
            )
            for sid, sent_at, planned_for in c.execute(query):
                out[int(sid)].append(sent_at or planned_for)
    return out


def item_feedback(engine: Engine) -> tuple[dict[int, int], dict[int, int]]:
    """Per item id: exposures (slots of sent messages) and human clicks on them."""
    e = event_table.c
    with engine.connect() as c:
        shown = c.execute(
            select(SL.item_id, func.count())
            .join(message_table, M.id == SL.message_id)
            .where(M.status == MessageStatus.sent)
            .group_by(SL.item_id)
        ).all()
        clicked = c.execute(
            select(e.item_id, func.count(func.distinct(e.message_id)))
            .where(e.kind == "click", human_event, e.item_id.is_not(None))
            .group_by(e.item_id)
        ).all()
    return {int(i): int(n) for i, n in shown}, {int(i): int(n) for i, n in clicked}


def assignments(engine: Engine, *, experiment: str, ids: Sequence[int]) -> dict[int, str]:
    """Arms already recorded for these subscribers in an experiment (sticky)."""
    a = assignment_table.c
    out: dict[int, str] = {}
    with engine.connect() as c:
        for chunk in _chunks(ids):
            query = select(a.subscriber_id, a.arm).where(
                a.experiment == experiment, a.subscriber_id.in_(chunk)
            )
            out.update((int(s), str(arm)) for s, arm in c.execute(query))
    return out


def write_shard(
    engine: Engine,
    *,
    run_id: int,
    messages: pd.DataFrame,
    slots: pd.DataFrame,
    assignments: pd.DataFrame,
) -> int:
    """Persist one shard in one transaction; returns the number of new messages.

    `messages` has the Message columns but run_id/id; `slots` the Slot columns with
    `subscriber_id` in place of `message_id`. Subscribers already in the run are left alone.
    The transaction first locks the run's row, so writers of the same run (a shard task
    delivered twice, in two processes) take turns and the second finds the first's messages.
    """
    if messages.empty:
        return 0
    with engine.begin() as c:
        return write_frames(
            c, run_id=run_id, messages=messages, slots=slots, assignments=assignments
        )


def write_frames(
    c: Connection,
    *,
    run_id: int,
    messages: pd.DataFrame,
    slots: pd.DataFrame,
    assignments: pd.DataFrame,
) -> int:
    """:func:`write_shard` inside the caller's transaction (locks the run's row first)."""
    if messages.empty:
        return 0
    ids = [int(i) for i in messages["subscriber_id"]]
    table = run_table
    c.execute(update(table).where(table.c.id == run_id).values(status=table.c.status))
    existing = _planned(c, run_id, ids)
    fresh = messages[~messages["subscriber_id"].isin(existing)].assign(run_id=run_id)
    bulk_insert(c, table="message", frame=fresh)
    bulk_insert(c, table="assignment", frame=assignments)
    new_ids = _message_ids(c, run_id, [i for i in ids if i not in existing])
    rows = slots[slots["subscriber_id"].isin(new_ids.keys())]
    rows = rows.assign(message_id=rows["subscriber_id"].map(new_ids))
    bulk_insert(c, table="slot", frame=rows.drop(columns=["subscriber_id"]), ignore_conflicts=False)
    return len(fresh)


def planned_in_run(engine: Engine, *, run_id: int, ids: Sequence[int]) -> set[int]:
    """The subscribers among `ids` that already have a message in the run."""
    with engine.connect() as c:
        return _planned(c, run_id, [int(i) for i in ids])


def _planned(c: Connection, run_id: int, ids: list[int]) -> set[int]:
    out: set[int] = set()
    for chunk in _chunks(ids):
        query = select(M.subscriber_id).where(M.run_id == run_id, M.subscriber_id.in_(chunk))
        out.update(int(r[0]) for r in c.execute(query))
    return out


def _message_ids(c: Connection, run_id: int, ids: list[int]) -> dict[int, int]:
    out: dict[int, int] = {}
    for chunk in _chunks(ids):
        query = select(M.subscriber_id, M.id).where(M.run_id == run_id, M.subscriber_id.in_(chunk))
        out.update((int(s), int(m)) for s, m in c.execute(query))
    return out


def plan_counts(engine: Engine, *, run_id: int) -> list[tuple[str, str, str | None, int]]:
    """(arm, status, reason, messages) of a run's messages: the plan's counts (`delivery.run_counts`
    counts by status for delivery)."""
    with engine.connect() as c:
        rows = c.execute(
            select(M.arm, M.status, M.reason, func.count())
            .where(M.run_id == run_id)
            .group_by(M.arm, M.status, M.reason)
        ).all()
    return [(str(a), str(s), r, int(n)) for a, s, r, n in rows]


def finish_run(engine: Engine, *, run_id: int, stats: dict[str, Any], now: datetime) -> None:
    """Mark a run planned and store its stats (a held or cancelled run keeps its status)."""
    table = run_table
    with engine.begin() as c:
        c.execute(
            update(table)
            .where(table.c.id == run_id)
            .values(
                status=case(
                    (table.c.status.in_(("held", "cancelled")), table.c.status), else_="planned"
                ),
                stats=stats,
                finished_at=now,
            )
        )


def message_and_slots(
    engine: Engine, *, run_id: int, subscriber_id: int
) -> tuple[Message, list[Slot]] | None:
    """One subscriber's message in a run and its slots (by position), or None."""
    with engine.connect() as c:
        row = c.execute(
            select(Message).where(Message.run_id == run_id, Message.subscriber_id == subscriber_id)  # type: ignore[arg-type]
        ).first()
        if row is None:
            return None
        message = Message.model_validate(row._mapping)
        slots = c.execute(
            select(Slot).where(Slot.message_id == message.id).order_by(Slot.position)  # type: ignore[arg-type]
        ).all()
    return message, [Slot.model_validate(s._mapping) for s in slots]


def item_titles(engine: Engine, *, ids: Iterable[int]) -> dict[int, str]:

    t = item_table.c
    wanted = sorted({int(i) for i in ids})
    with engine.connect() as c:
        return {
            int(i): str(title)
            for i, title in c.execute(select(t.id, t.title).where(t.id.in_(wanted)))
        }


def discard_unsent_run(engine: Engine, *, run_id: int) -> bool:
    """Delete a run whose planning failed, with its messages, slots and artifacts, if nothing
    of it was handed to delivery (a run still ``planning`` whose messages are all planned or
    skipped).

    Returns whether the run was deleted. A failed plan so leaves no half-made run behind for
    `report`, `why` or `run list` to find; the next attempt starts it afresh.
    """
    table = run_table
    with engine.begin() as c:
        status = c.execute(select(table.c.status).where(table.c.id == run_id)).scalar()
        started = c.execute(
            select(func.count()).where(M.run_id == run_id, M.status.not_in(["planned", "skipped"]))
        ).scalar_one()
        if status != RunStatus.planning or started:
            return False
        messages = select(M.id).where(M.run_id == run_id).scalar_subquery()
        c.execute(delete(slot_table).where(SL.message_id.in_(messages)))
        c.execute(delete(message_table).where(M.run_id == run_id))
        artifacts = run_artifact_table
        c.execute(delete(artifacts).where(artifacts.c.run_id == run_id))
        c.execute(delete(table).where(table.c.id == run_id))
    return True


DEPARTURE_EVENTS = {"unsubscribed": "unsubscribe", "bounced": "bounce", "complained": "complaint"}


def departure(engine: Engine, *, subscriber_id: int) -> tuple[str, datetime | None] | None:
    """Why a subscriber may not be emailed and since when: their status when it is not active
    (dated by the matching event, else the suppression, else the last update), or the
    suppression reason of an active address; None when they can be emailed."""
    s = subscriber_table.c
    sup = suppression_table.c
    e = event_table.c
    with engine.connect() as c:
        row = c.execute(
            select(s.status, s.updated_at, sup.reason, sup.created_at)
            .outerjoin(suppression_table, sup.email == s.email)
            .where(s.id == subscriber_id)
        ).first()
        if row is None:
            return None
        status, updated, suppressed, suppressed_at = row
        if status == SubscriberStatus.active:
            return None if suppressed is None else (f"suppressed:{suppressed}", suppressed_at)
        kind = DEPARTURE_EVENTS.get(str(status))
        event_at = c.execute(
            select(func.max(e.occurred_at)).where(e.subscriber_id == subscriber_id, e.kind == kind)
        ).scalar()
    return str(status), event_at or suppressed_at or updated
