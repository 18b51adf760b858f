"""Runs as `newsletter run list` and `plan` show them: pending runs, message counts, caps."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, func, select

from newsletter.enums import MessageStatus, RunStatus
from newsletter.models import Run
from newsletter.store.planning import LIVE, M
from newsletter.tables import campaign_table, message_table, run_table

# A run that is not delivered yet: its plan (or its delivery) still has work to do.
PENDING = (
    RunStatus.planning,
    RunStatus.planned,
    RunStatus.delivering,
    RunStatus.waiting,
    RunStatus.paused,
)


@dataclass(frozen=True)
class RunRow:
    """One run for `run list`: which campaign, when, its status and messages by status."""

    id: int
    campaign: str
    scheduled_for: datetime
    status: str
    created_at: datetime
    messages: dict[str, int]


def pending_run(engine: Engine, *, campaign_id: int) -> Run | None:
    """The campaign's newest run that is not delivered yet (planned, waiting, paused...)."""
    query = (
        select(Run)
        .where(Run.campaign_id == campaign_id, Run.status.in_(PENDING))  # type: ignore[arg-type,attr-defined]
        .order_by(Run.scheduled_for.desc())  # type: ignore[attr-defined]
    )
    with engine.connect() as c:
        row = c.execute(query).first()
    return Run.model_validate(row._mapping) if row else None


def list_runs(engine: Engine, *, campaign_id: int | None = None, limit: int = 50) -> list[RunRow]:
    """The newest runs (of one campaign, or all), newest scheduled first, with message counts."""
    r, ca = run_table.c, campaign_table.c
    query = select(r.id, ca.name, r.scheduled_for, r.status, r.created_at).join(
        campaign_table,
        ca.id == r.campaign_id,
    )
    if campaign_id is not None:
        query = query.where(r.campaign_id == campaign_id)
    with engine.connect() as c:
        runs = c.execute(query.order_by(r.scheduled_for.desc(), r.id.desc()).limit(limit)).all()
        ids = [int(row[0]) for row in runs]
        counts: dict[int, dict[str, int]] = defaultdict(dict)
        for run_id, status, n in c.execute(
            select(M.run_id, M.status, func.count())
            .where(M.run_id.in_(ids))
            .group_by(M.run_id, M.status)
        ):
            counts[int(run_id)][str(status)] = int(n)
    return [
        RunRow(int(i), str(name), when, str(status), made, dict(sorted(counts[int(i)].items())))
        for i, name, when, status, made in runs
    ]


def capping_runs(engine: Engine, *, run_id: int, reasons: Sequence[str]) -> dict[int, str]:
    """The other runs (id -> status) holding live messages of this run's subscribers who
    were skipped for one of `reasons` (the frequency caps): where those readers' mail is."""
    other = message_table.alias("other")
    r = run_table.c
    query = (
        select(other.c.run_id, r.status)
        .select_from(
            message_table.join(other, other.c.subscriber_id == M.subscriber_id).join(
                run_table,
                r.id == other.c.run_id,
            )
        )
        .where(
            M.run_id == run_id,
            M.status == MessageStatus.skipped,
            M.reason.in_(list(reasons)),
            other.c.run_id != run_id,
            other.c.status.in_(LIVE),
        )
        .distinct()
        .order_by(other.c.run_id)
    )
    with engine.connect() as c:
        return {int(i): str(status) for i, status in c.execute(query)}
