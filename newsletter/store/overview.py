"""Reads for the campaign pages: a campaign's runs and each run's messages by status."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Engine, func, select

from newsletter.models import Campaign, Run
from newsletter.tables import campaign_table, message_table, run_table

C = campaign_table.c
R = run_table.c
M = message_table.c


def campaigns(engine: Engine) -> list[Campaign]:
    """Every campaign, by name."""
    with engine.connect() as c:
        return [
            Campaign.model_validate(r._mapping)
            for r in c.execute(select(Campaign).order_by(C.name))
        ]


def campaign(engine: Engine, *, name: str) -> Campaign | None:
    with engine.connect() as c:
        row = c.execute(select(Campaign).where(C.name == name)).first()
    return Campaign.model_validate(row._mapping) if row else None


def runs_of(
    engine: Engine, *, campaign_ids: Sequence[int], limit: int = 20
) -> dict[int, list[Run]]:
    """The newest runs of each campaign (newest first, at most `limit` each)."""
    out: dict[int, list[Run]] = {int(i): [] for i in campaign_ids}
    if not out:
        return out
    query = (
        select(Run)
        .where(R.campaign_id.in_(list(out)))
        .order_by(R.scheduled_for.desc(), R.id.desc())
    )
    with engine.connect() as c:
        for row in c.execute(query):
            run = Run.model_validate(row._mapping)
            if len(out[run.campaign_id]) < limit:
                out[run.campaign_id].append(run)
    return out


def run(engine: Engine, *, run_id: int) -> Run | None:
    with engine.connect() as c:
        row = c.execute(select(Run).where(R.id == run_id)).first()
    return Run.model_validate(row._mapping) if row else None


def counts_by_status(engine: Engine, *, run_ids: Sequence[int]) -> dict[int, dict[str, int]]:
    """Messages per status of each run."""
    out: dict[int, dict[str, int]] = {int(i): {} for i in run_ids}
    if not out:
        return out
    query = (
        select(M.run_id, M.status, func.count())
        .where(M.run_id.in_(list(out)))
        .group_by(M.run_id, M.status)
    )
    with engine.connect() as c:
        for run_id, status, n in c.execute(query):
            out[int(run_id)][str(status)] = int(n)
    return out
