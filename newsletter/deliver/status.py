"""A run's status after a delivery pass, read from its messages (never assumed).

:func:`settle_run` is the one place that decides it: a run whose plan is incomplete goes back
to ``planning`` (it is never ``delivered`` while a member has no message: resuming it plans
them first); with nothing left to send it is ``delivered``; with only future send times left it
is ``waiting``; otherwise (another worker still sending) it stays ``delivering``. A person's
``held`` or ``cancelled`` is never overridden: such a run keeps it, whatever its messages say.
"""

from __future__ import annotations

from datetime import datetime

from newsletter.db import Engine
from newsletter.models import MessageStatus, RunStatus
from newsletter.plan.runs import plan_complete
from newsletter.store import delivery as store
from newsletter.store.runs import HALTED, run_status


def settle_run(engine: Engine, *, run_id: int, now: datetime) -> RunStatus:
    """Set and return the run's status from what its messages say at `now` (a held or
    cancelled run keeps, and returns, that status)."""
    current = run_status(engine, run_id=run_id)
    if current in HALTED:
        return RunStatus(current)
    if not plan_complete(engine, run_id=run_id):
        status = RunStatus.planning
    else:
        counts = store.run_counts(engine, run_id=run_id).by_status
        claimable = sum(counts.get(s, 0) for s in store.CLAIMABLE)
        sending = counts.get(MessageStatus.sending, 0)
        later, _ = store.waiting(engine, run_id=run_id, due_by=now) if claimable else (0, None)
        if claimable == 0 and sending == 0:
            status = RunStatus.delivered
        elif sending == 0 and later == claimable:
            status = RunStatus.waiting
        else:
            status = RunStatus.delivering
    done = status == RunStatus.delivered
    if not store.set_run_status(engine, run_id=run_id, status=status, now=now, finished=done):
        current = run_status(engine, run_id=run_id)  # a person halted it meanwhile
        return RunStatus(current) if current in HALTED else status
    return status


def settle_if_done(engine: Engine, *, run_id: int, now: datetime) -> RunStatus | None:
    """Settle the run only when nothing is being sent and nothing due is left (the last
    shard to finish does it); else leave the status alone and return None.

    Shards that finish at the same time may both settle, to the same status; a shard that
    finds work left never writes, so it cannot undo the last shard's ``delivered``.
    """
    if not plan_complete(engine, run_id=run_id):
        return None
    counts = store.run_counts(engine, run_id=run_id).by_status
    claimable = sum(counts.get(s, 0) for s in store.CLAIMABLE)
    if counts.get(MessageStatus.sending, 0):
        return None
    if claimable:
        later, _ = store.waiting(engine, run_id=run_id, due_by=now)
        if later < claimable:
            return None
    return settle_run(engine, run_id=run_id, now=now)
