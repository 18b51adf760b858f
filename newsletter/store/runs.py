"""A person's control over a run: hold (pause), release (resume) and cancel, as SQL.

A held or cancelled run keeps that status until a person changes it: the delivery loop reads
it (``run_status``) and stops claiming messages, and ``delivery.set_run_status`` never
overwrites it. Cancelling also skips every message not yet handed to the mail server (reason
``cancelled``) in the same transaction, so no later pass can send one; a message already
``sending`` finishes normally.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine, select, update

from newsletter.models import Message, MessageStatus, Run, RunStatus

R = Run.__table__.c  # type: ignore[attr-defined]
M = Message.__table__.c  # type: ignore[attr-defined]
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
    query = update(Run.__table__).where(R.id == run_id, R.status.in_(HOLDABLE))  # type: ignore[attr-defined]
    with engine.begin() as c:
        return bool(c.execute(query.values(status=RunStatus.held)).rowcount)


def release_run(engine: Engine, *, run_id: int) -> bool:
    """Resume a held run: it becomes ``waiting`` for the next delivery pass (False: not held)."""
    query = update(Run.__table__).where(R.id == run_id, R.status == RunStatus.held)  # type: ignore[attr-defined]
    with engine.begin() as c:
        return bool(c.execute(query.values(status=RunStatus.waiting)).rowcount)


def cancel_run(engine: Engine, *, run_id: int, now: datetime) -> int | None:
    """Cancel a run and skip its unsent messages; the number skipped, None if not cancellable."""
    runs = update(Run.__table__).where(  # type: ignore[attr-defined]
        R.id == run_id, R.status.not_in((RunStatus.delivered, RunStatus.cancelled))
    )
    messages = update(Message.__table__).where(M.run_id == run_id, M.status.in_(UNSENT))  # type: ignore[attr-defined]
    with engine.begin() as c:
        if not c.execute(runs.values(status=RunStatus.cancelled, finished_at=now)).rowcount:
            return None
        done = c.execute(
            messages.values(status=MessageStatus.skipped, reason=CANCELLED_REASON, updated_at=now)
        ).rowcount
    return int(done)
