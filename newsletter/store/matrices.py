"""Load the recommender's inputs from the database: ids mapped to integer indices.

:func:`load_matrices` reads every subscriber, item and interaction (plus human email clicks,
as kind ``email_click``) and returns :class:`Matrices`: the
:class:`~newsletter.recommend.base.InteractionData` and
:class:`~newsletter.recommend.base.ItemCatalog` hand-off, with the sorted id arrays that map
indices back to ids (``subscriber_ids[u]``, ``item_ids[i]``). Times become float seconds in
SQL (``julianday`` on SQLite, ``extract(epoch ...)`` on PostgreSQL), so no per-row datetime
parsing happens in Python.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import Connection, Engine, Float, String, cast, func, literal, select

from newsletter.recommend.base import InteractionData, ItemCatalog
from newsletter.recommend.clicks import ExposureLog
from newsletter.recommend.weighting import WeightingConfig
from newsletter.tables import (
    event_table,
    human_event,
    interaction_table,
    item_table,
    subscriber_table,
)

Array = np.ndarray


@dataclass(frozen=True)
class Matrices:
    """Recommender inputs plus the id <-> index maps."""

    data: InteractionData
    catalog: ItemCatalog
    subscriber_ids: Array  # sorted; index u -> subscriber id
    item_ids: Array  # sorted; index i -> item id
    exposures: ExposureLog | None = None  # the emails' logged slots, when a ranker needs them

    def user_index(self, ids: Any) -> Array:
        """Indices of subscriber ids (-1 for ids not loaded)."""
        return _index(self.subscriber_ids, ids)

    def item_index(self, ids: Any) -> Array:
        """Indices of item ids (-1 for ids not loaded)."""
        return _index(self.item_ids, ids)


def _index(sorted_ids: Array, ids: Any) -> Array:
    ids = np.asarray(ids, dtype=np.int64)
    if len(sorted_ids) == 0:
        return np.full(ids.shape, -1, dtype=np.int64)
    pos = np.clip(np.searchsorted(sorted_ids, ids), 0, len(sorted_ids) - 1)
    return np.where(sorted_ids[pos] == ids, pos, -1)


def epoch_seconds(connection: Connection, *, column: Any) -> Any:
    """A SQL expression for a timestamp column as float seconds since 1970 (UTC)."""
    if connection.dialect.name == "postgresql":
        return cast(func.extract("epoch", column), Float)
    return (func.julianday(column) - 2440587.5) * 86400.0


def _catalog(connection: Connection) -> tuple[Array, ItemCatalog]:
    t = item_table.c
    rows = connection.execute(
        select(
            t.id,
            t.title,
            t.summary,
            t.topics,
            epoch_seconds(connection, column=t.published_at),
            t.active,
            epoch_seconds(connection, column=t.expires_at),
            t.attributes,
        ).order_by(t.id)
    ).all()
    cols: list[Any] = list(zip(*rows, strict=True)) if rows else [[] for _ in range(8)]
    published = np.array([np.nan if v is None else v for v in cols[4]], dtype=np.float64)
    expires = np.array([np.inf if v is None else v for v in cols[6]], dtype=np.float64)
    catalog = ItemCatalog(
        titles=list(cols[1]),
        texts=list(cols[2]),
        topics=[list(x or []) for x in cols[3]],
        published_at=np.nan_to_num(published, nan=0.0),
        active=np.array(cols[5], dtype=bool),
        expires_at=expires,
        attributes=list(cols[7]),
    )
    return np.array(cols[0], dtype=np.int64), catalog


def _events(connection: Connection, since: datetime | None) -> list[Any]:
    i = interaction_table.c
    e = event_table.c
    query = select(
        i.subscriber_id, i.item_id, i.kind, epoch_seconds(connection, column=i.occurred_at), i.value
    )
    clicks = select(
        e.subscriber_id,
        e.item_id,
        literal("email_click", String),
        epoch_seconds(connection, column=e.occurred_at),
        cast(None, Float),
    ).where(e.kind == "click", human_event, e.item_id.is_not(None))
    if since is not None:
        query = query.where(i.occurred_at >= since)
        clicks = clicks.where(e.occurred_at >= since)
    # The raw DBAPI rows: no per-value result processing (times are already float seconds).
    return list(connection.execute(query.union_all(clicks)).cursor.fetchall())


def _topics(raw: str | None) -> list[str]:
    """Decode a JSON topic list (most are empty, so skip the parser for those)."""
    if not raw or raw == "[]":
        return []
    return [str(t) for t in json.loads(raw)]


def _values(values: Array) -> Array | None:
    """Explicit strengths (ratings) or None; rows without one get the neutral value_scale."""
    if not np.isfinite(values).any():
        return None
    return np.where(np.isfinite(values), values, WeightingConfig().value_scale)


def load_matrices(engine: Engine, *, since: datetime | None = None) -> Matrices:
    """Read subscribers, items and behaviour (since `since`, if given) as integer arrays."""
    s = subscriber_table.c
    with engine.connect() as connection:
        result = connection.execute(select(s.id, cast(s.topics, String)).order_by(s.id))
        subs = result.cursor.fetchall()
        item_ids, catalog = _catalog(connection)
        rows = _events(connection, since)
    subscriber_ids = np.array([r[0] for r in subs], dtype=np.int64)
    cols: list[Any] = list(zip(*rows, strict=True)) if rows else [[] for _ in range(5)]
    users = _index(subscriber_ids, np.array(cols[0], dtype=np.int64))
    items = _index(item_ids, np.array(cols[1], dtype=np.int64))
    keep = (users >= 0) & (items >= 0)
    values = np.array(cols[4], dtype=np.float64)  # None becomes nan
    data = InteractionData(
        n_users=len(subscriber_ids),
        n_items=len(item_ids),
        user_idx=users[keep],
        item_idx=items[keep],
        kind=np.array(cols[2], dtype=str)[keep],
        timestamp=np.array(cols[3], dtype=np.float64)[keep],
        value=_values(values[keep]),
        user_topics=[_topics(r[1]) for r in subs],
    )
    return Matrices(data=data, catalog=catalog, subscriber_ids=subscriber_ids, item_ids=item_ids)
