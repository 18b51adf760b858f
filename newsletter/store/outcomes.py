"""What the multi-week report reads: runs, one row per message, one row per slot, item facts.

Every function returns plain pandas frames (no ORM rows) for the report to compute on:

* :func:`select_runs` -- the runs of a campaign (or of every campaign), optionally since a date;
* :func:`message_outcomes` -- per message of those runs: arm, status, and 0/1 flags for human
  open (an open or a click by a person), human click, machine-only open, any click (machine
  included: the *unfiltered* count), unsubscribe, bounce and complaint, plus whether the
  subscriber did something on the site in the 7 days after the run (for the control arm);
* :func:`slot_outcomes` -- per slot of sent messages: position, item, source, propensity,
  score and whether a person clicked it;
* :func:`item_facts` -- published time and topics of items;
* :func:`prior_consumption` -- which (subscriber, item) pairs had behaviour before a time.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
from sqlalchemy import Connection, Engine, and_, case, func, select

from newsletter.models import (
    MessageStatus,
)
from newsletter.store.exposures import human_clicked_slots, is_clicked
from newsletter.tables import (
    campaign_table,
    event_table,
    human_event,
    interaction_table,
    item_table,
    message_table,
    run_table,
    slot_table,
)

M = message_table.c
R = run_table.c
C = campaign_table.c
E = event_table.c
S = slot_table.c
IT = item_table.c
X = interaction_table.c
CHUNK = 5000
SITE_WINDOW = timedelta(days=7)


def plain_rows(c: Connection, query: Any) -> list[tuple[Any, ...]]:
    """The rows of a query over plain columns (numbers, text), as the driver's own tuples.

    SQLAlchemy builds a ``Row`` per result row; on a report's million slot rows that cost
    twice the query. No result processing happens, so only for columns the driver returns
    as they should be read (not times, not JSON); parameters are bound as usual.
    """
    return list(c.execute(query).cursor.fetchall())


def _frame(rows: Sequence[Any], columns: Sequence[str]) -> pd.DataFrame:
    """A frame of plain result rows (tuples, see :func:`plain_rows`)."""
    return pd.DataFrame(rows, columns=list(columns))


def select_runs(
    engine: Engine, *, campaign: str | None = None, since: datetime | None = None
) -> pd.DataFrame:
    """Runs (id, campaign, scheduled_for), oldest first; `campaign` None = every campaign."""
    query = select(R.id.label("run_id"), C.name.label("campaign"), R.scheduled_for).join(
        campaign_table,
        C.id == R.campaign_id,
    )
    if campaign is not None:
        query = query.where(C.name == campaign)
    if since is not None:
        query = query.where(R.scheduled_for >= since)
    with engine.connect() as c:
        rows = c.execute(query.order_by(R.scheduled_for, R.id)).all()
    frame = pd.DataFrame(rows, columns=["run_id", "campaign", "scheduled_for"])
    frame["scheduled_for"] = pd.to_datetime(frame["scheduled_for"], utc=True)
    return frame


def newest_run_campaign(engine: Engine) -> str | None:
    """The campaign of the newest run, or None when there are no runs."""
    query = (
        select(C.name)
        .join(run_table, R.campaign_id == C.id)
        .order_by(R.scheduled_for.desc(), R.id.desc())
        .limit(1)
    )
    with engine.connect() as c:
        return c.execute(query).scalar()


def _flag(condition: Any) -> Any:
    return func.max(case((condition, 1), else_=0))


def message_outcomes(engine: Engine, *, run_ids: Sequence[int]) -> pd.DataFrame:
    """One row per sent, bounced or control message of the runs (see the module docstring)."""
    human = human_event
    counted = (M.status == MessageStatus.sent) | (M.reason.in_(["bounced", "control_arm"]))
    columns = [
        "message_id",
        "run_id",
        "subscriber_id",
        "arm",
        "status",
        "reason",
        "human_open",
        "human_click",
        "machine_open",
        "any_click",
        "unsubscribe",
        "complaint",
    ]
    frames = []
    with engine.connect() as c:
        for start in range(0, len(run_ids), 50):
            chunk = [int(r) for r in run_ids[start : start + 50]]
            query = (
                select(
                    M.id,
                    M.run_id,
                    M.subscriber_id,
                    M.arm,
                    M.status,
                    M.reason,
                    _flag(and_(human, E.kind.in_(["open", "click"]))),
                    _flag(and_(human, E.kind == "click")),
                    _flag(and_(~human, E.kind == "open")),
                    _flag(E.kind == "click"),
                    _flag(E.kind == "unsubscribe"),
                    _flag(E.kind == "complaint"),
                )
                .select_from(
                    message_table.join(run_table, R.id == M.run_id).outerjoin(
                        event_table,
                        E.message_id == M.id,
                    )
                )
                .where(M.run_id.in_(chunk), counted)
                .group_by(M.id, M.run_id, M.subscriber_id, M.arm, M.status, M.reason)
            )
            frames.append(_frame(plain_rows(c, query), columns))
        out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)
        out["site_active"] = 0
        wanted = [int(r) for r in run_ids]
        runs = c.execute(select(R.id, R.scheduled_for).where(R.id.in_(wanted))).all()
        for run_id, when in runs:
            active = _site_active(c, when)
            rows = out["run_id"] == run_id
            out.loc[rows, "site_active"] = out.loc[rows, "subscriber_id"].isin(active).astype(int)
    out["machine_open"] = out["machine_open"] * (1 - out["human_open"])
    out["bounce"] = (out["reason"] == "bounced").astype(int)
    return out.sort_values("message_id", ignore_index=True)


def _site_active(c: Connection, when: datetime) -> set[int]:
    """Subscribers with any behaviour on the site in the week after `when`."""
    query = select(X.subscriber_id).where(X.occurred_at >= when, X.occurred_at < when + SITE_WINDOW)
    return {int(r[0]) for r in c.execute(query.distinct())}


def slot_outcomes(engine: Engine, *, run_ids: Sequence[int]) -> pd.DataFrame:
    """One row per slot of the runs' sent messages, with the person's click on it (0/1)."""
    columns = [
        "message_id",
        "run_id",
        "subscriber_id",
        "arm",
        "position",
        "item_id",
        "source",
        "propensity",
        "score",
    ]
    frames: list[pd.DataFrame] = []
    clicked: set[tuple[int, int]] = set()
    with engine.connect() as c:
        for start in range(0, len(run_ids), 50):
            chunk = [int(r) for r in run_ids[start : start + 50]]
            sent = and_(M.run_id.in_(chunk), M.status == MessageStatus.sent)
            query = select(
                S.message_id,
                M.run_id,
                M.subscriber_id,
                M.arm,
                S.position,
                S.item_id,
                S.source,
                S.propensity,
                S.score,
            ).select_from(slot_table.join(message_table, M.id == S.message_id))
            frames.append(_frame(plain_rows(c, query.where(sent)), columns))
            clicked |= human_clicked_slots(c, sent)
    if not frames:
        return pd.DataFrame(columns=[*columns, "clicked"])
    out = pd.concat(frames, ignore_index=True)
    hit = is_clicked(out["message_id"].tolist(), out["position"].tolist(), clicked)
    out["clicked"] = hit.astype(int)
    return out.sort_values(["message_id", "position"], ignore_index=True)


def item_facts(engine: Engine) -> pd.DataFrame:
    """Every item's id, published time and topics (a list)."""
    with engine.connect() as c:
        rows = c.execute(select(IT.id, IT.published_at, IT.topics, IT.active)).all()
    frame = pd.DataFrame(rows, columns=["item_id", "published_at", "topics", "active"])
    frame["published_at"] = pd.to_datetime(frame["published_at"], utc=True)
    frame["topics"] = [t if isinstance(t, list) else json.loads(t or "[]") for t in frame["topics"]]
    return frame


def latest_behaviour(engine: Engine) -> datetime | None:
    """The time of the newest behaviour row (how far site activity is known), or None."""
    with engine.connect() as c:
        return c.execute(select(func.max(X.occurred_at))).scalar()


def engaged_items(
    engine: Engine, *, windows: dict[int, tuple[datetime, datetime]]
) -> dict[int, set[int]]:
    """Per key, the items with any behaviour in its window ``[start, end)``.

    One pass over the behaviour of all the windows together (a flag per window per item),
    not one per window: the report asks for one four-week window per run.
    """
    out: dict[int, set[int]] = {key: set() for key in windows}
    keys = list(windows)
    with engine.connect() as c:
        for lo in range(0, len(keys), 50):
            chunk = keys[lo : lo + 50]
            flags = [
                _flag((X.occurred_at >= windows[k][0]) & (X.occurred_at < windows[k][1]))
                for k in chunk
            ]
            first = min(windows[k][0] for k in chunk)
            last = max(windows[k][1] for k in chunk)
            query = (
                select(X.item_id, *flags)
                .where(X.occurred_at >= first, X.occurred_at < last)
                .group_by(X.item_id)
            )
            for item, *hits in c.execute(query):
                for key, hit in zip(chunk, hits, strict=True):
                    if hit:
                        out[key].add(int(item))
    return out


def prior_consumption(
    engine: Engine, *, subscribers: Sequence[int], items: Sequence[int], before: datetime
) -> set[tuple[int, int]]:
    """(subscriber, item) pairs with behaviour or a human email click before `before`."""
    wanted = sorted({int(i) for i in items})
    out: set[tuple[int, int]] = set()
    if not wanted:
        return out
    people = sorted({int(s) for s in subscribers})
    with engine.connect() as c:
        for start in range(0, len(people), CHUNK):
            chunk = people[start : start + CHUNK]
            behaviour = select(X.subscriber_id, X.item_id).where(
                X.subscriber_id.in_(chunk), X.item_id.in_(wanted), X.occurred_at < before
            )
            clicks = select(E.subscriber_id, E.item_id).where(
                E.subscriber_id.in_(chunk),
                E.item_id.in_(wanted),
                E.occurred_at < before,
                E.kind == "click",
                human_event,
            )
            out.update((int(s), int(i)) for s, i in c.execute(behaviour.union(clicks)))
    return out
