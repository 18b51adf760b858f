"""Run-level queries the pipeline needs: a run's row, its message count, due runs, schedules."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, func, select

from newsletter.models import Campaign, Message, Run
from newsletter.store.delivery import CLAIMABLE

R = Run.__table__.c  # type: ignore[attr-defined]
M = Message.__table__.c  # type: ignore[attr-defined]
C = Campaign.__table__.c  # type: ignore[attr-defined]


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
            .join(Campaign.__table__, C.id == R.campaign_id)  # type: ignore[attr-defined]
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
            .join(Campaign.__table__, C.id == R.campaign_id)  # type: ignore[attr-defined]
            .where(C.name == campaign, R.scheduled_for == scheduled_for)
        ).scalar()
    return None if found is None else int(found)
