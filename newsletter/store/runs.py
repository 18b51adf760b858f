"""Run-level SQL: a person's control over a run, and the queries the pipeline needs.

Control: hold (pause), release (resume) and cancel. A held or cancelled run keeps that status
until a person changes it: the delivery loop reads it (``run_status``) and stops claiming
messages, and ``delivery.set_run_status`` never overwrites it. Cancelling also skips every
message not yet handed to the mail server (reason ``cancelled``) in the same transaction, so
no later pass can send one; a message already ``sending`` finishes normally.

Pipeline queries: a run's row, its message count, runs with due messages, scheduled campaigns.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, func, select, update

from newsletter.models import MessageStatus, RunStatus
from newsletter.store.delivery import CLAIMABLE
from newsletter.tables import campaign_table, message_table, run_table

R = run_table.c
M = message_table.c
C = campaign_table.c
HALTED = (RunStatus.held, RunStatus.cancelled)
HOLDABLE = (
    RunStatus.planning,
    RunStatus.planned,
    RunStatus.delivering,
    RunStatus.waiting,
    RunStatus.paused,
)
UNSENT = (MessageStatus.planned, MessageStatus.rendered)
CANCELLED_REASON = "cancelled"


def run_status(engine: Engine, *, run_id: int) -> str | None:
    """The run's status, or None when the run does not exist."""
    with engine.connect() as c:
        found = c.execute(select(R.status).where(R.id == run_id)).scalar()
    return None if found is None else str(found)


def hold_run(engine: Engine, *, run_id: int) -> bool:
    """Pause a run that is planned or being delivered (False: nothing to pause)."""
    query = update(run_table).where(R.id == run_id, R.status.in_(HOLDABLE))
    with engine.begin() as c:
        return bool(c.execute(query.values(status=RunStatus.held)).rowcount)


def release_run(engine: Engine, *, run_id: int) -> bool:
    """Resume a held run: it becomes ``waiting`` for the next delivery pass (False: not held)."""
    query = update(run_table).where(R.id == run_id, R.status == RunStatus.held)
    with engine.begin() as c:
        return bool(c.execute(query.values(status=RunStatus.waiting)).rowcount)


def cancel_run(engine: Engine, *, run_id: int, now: datetime) -> int | None:
    """Cancel a run and skip its unsent messages; the number skipped, None if not cancellable."""
    runs = update(run_table).where(
        R.id == run_id, R.status.not_in((RunStatus.delivered, RunStatus.cancelled))
    )
    messages = update(message_table).where(M.run_id == run_id, M.status.in_(UNSENT))
    with engine.begin() as c:
        if not c.execute(runs.values(status=RunStatus.cancelled, finished_at=now)).rowcount:
            return None
        done = c.execute(
            messages.values(status=MessageStatus.skipped, reason=CANCELLED_REASON, updated_at=now)
        ).rowcount
    return int(done)


@dataclass(frozen=True)
class RunRow:
    """A run with the name of its campaign."""

    id: int
    campaign_id: int
    campaign: str
    scheduled_for: datetime
    status: str


def run_row(engine: Engine, *, run_id: int) -> RunRow | None:
    """The run `run_id` and its campaign's name, or None when there is no such run."""
    with engine.connect() as c:
        row = c.execute(
            select(R.id, R.campaign_id, C.name, R.scheduled_for, R.status)
            .join(campaign_table, C.id == R.campaign_id)
            .where(R.id == run_id)
        ).first()
    return None if row is None else RunRow(int(row[0]), int(row[1]), str(row[2]), row[3], row[4])


def message_count(engine: Engine, *, run_id: int) -> int:
    """How many messages (of any status) the run holds: one per planned member."""
    with engine.connect() as c:
        return int(c.execute(select(func.count()).where(M.run_id == run_id)).scalar_one())


def runs_with_due_messages(
    engine: Engine, *, due_by: datetime, statuses: Sequence[str]
) -> list[int]:
    """Runs in one of `statuses` holding claimable messages whose send time has come."""
    with engine.connect() as c:
        rows = c.execute(
            select(R.id)
            .where(R.status.in_(list(statuses)))
            .where(
                select(M.id)
                .where(M.run_id == R.id, M.status.in_(CLAIMABLE), M.planned_for <= due_by)
                .exists()
            )
            .order_by(R.id)
        )
        return [int(r[0]) for r in rows]


def scheduled_campaigns(engine: Engine, *, kind: str) -> list[tuple[str, str]]:
    """(name, schedule) of the active campaigns of `kind` that have a schedule."""
    with engine.connect() as c:
        rows = c.execute(
            select(C.name, C.schedule)
            .where(C.active.is_(True), C.kind == kind, C.schedule.is_not(None))
            .order_by(C.name)
        )
        return [(str(n), str(s)) for n, s in rows]


def run_id_for(engine: Engine, *, campaign: str, scheduled_for: datetime) -> int | None:
    """The id of the campaign's run for this scheduled time, or None."""
    with engine.connect() as c:
        found = c.execute(
            select(R.id)
            .join(campaign_table, C.id == R.campaign_id)
            .where(C.name == campaign, R.scheduled_for == scheduled_for)
        ).scalar()
    return None if found is None else int(found)
