"""Run-level reads and writes of delivery: counts by status, waiting messages, run status,
the campaign config and template name a run delivers with.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, func, select, update

from newsletter.enums import MessageStatus
from newsletter.tables import campaign_table, message_table, run_table

M = message_table.c
R = run_table.c
CLAIMABLE = (MessageStatus.planned, MessageStatus.rendered)


@dataclass
class RunCounts:
    """Messages of a run by status, skipped ones by reason, failed ones by reason."""

    by_status: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    failed: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.by_status.values())


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
        if st == MessageStatus.skipped:
            skipped[reason or "unknown"] += int(n)
        elif st == MessageStatus.failed:
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
