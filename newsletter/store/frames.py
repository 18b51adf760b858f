"""Load whole entity frames (subscribers, items with topics, interactions) in bulk, by key.

The vectorised path for large, generated or well-formed data (MovieLens, synthetic worlds):
subscribers and items are inserted by `external_key` (existing keys are kept), topics go to
`item_topic`, and interactions are mapped from keys to ids in pandas, then bulk inserted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Engine, select

from newsletter.models import Item, Subscriber
from newsletter.progress import Tick, silent
from newsletter.store.bulk import bulk_insert
from newsletter.tables import table_of


@dataclass(frozen=True)
class Frames:
    """Entity frames keyed by external keys (the columns of the tables, plus keys)."""

    subscribers: pd.DataFrame  # external_key, email, ... (Subscriber columns)
    items: pd.DataFrame  # external_key, title, url, ..., topics (list[str])
    interactions: pd.DataFrame  # subscriber_key, item_key, kind, occurred_at, value


def _id_map(connection: Connection, model: type, keys: pd.Series) -> pd.Series:
    """Database ids for external keys (NaN where unknown), by one hash lookup per row."""
    table = table_of(model)
    rows = connection.execute(select(table.c.external_key, table.c.id)).all()
    known = pd.Index([r[0] for r in rows])
    ids = np.array([r[1] for r in rows] + [0], dtype=np.int64)  # position -1 -> the 0 sentinel
    positions = known.get_indexer(keys)
    return pd.Series(ids[positions], index=keys.index).where(positions >= 0)


def load_frames(
    engine: Engine, *, frames: Frames, now: datetime, origin: str, progress: Tick = silent
) -> dict[str, int]:
    """Insert the frames in one transaction; returns the number of rows offered per entity.

    ``progress`` hears ("loading", rows written, rows offered) after each entity.
    """
    total = len(frames.subscribers) + len(frames.items) + len(frames.interactions)
    progress("loading", 0, total)
    subscribers = frames.subscribers.copy()
    subscribers["created_at"] = subscribers.get("created_at", now)
    subscribers["updated_at"] = now
    items = frames.items.copy()
    items["updated_at"] = now
    with engine.begin() as connection:
        bulk_insert(
            connection, table="subscriber", frame=subscribers, json_columns=("topics", "attributes")
        )
        progress("loading", len(subscribers), total)
        bulk_insert(connection, table="item", frame=items, json_columns=("topics", "attributes"))
        progress("loading", len(subscribers) + len(items), total)
        item_ids = _id_map(connection, Item, items["external_key"])
        topics = pd.DataFrame({"item_id": item_ids.to_numpy(), "topic": items["topics"]})
        topics = topics.explode("topic").dropna().drop_duplicates()
        bulk_insert(connection, table="item_topic", frame=topics)
        interactions = frames.interactions  # duplicates are dropped by bulk_insert
        mapped = pd.DataFrame(
            {
                "subscriber_id": _id_map(connection, Subscriber, interactions["subscriber_key"]),
                "item_id": _id_map(connection, Item, interactions["item_key"]),
                "kind": interactions["kind"],
                "occurred_at": interactions["occurred_at"],
                "value": interactions["value"],
                "source": origin,
            }
        )
        missing = mapped["subscriber_id"].isna() | mapped["item_id"].isna()
        if missing.any():
            raise ValueError(f"{int(missing.sum())} interactions name unknown subscribers/items")
        mapped = mapped.astype({"subscriber_id": "int64", "item_id": "int64"})
        bulk_insert(connection, table="interaction", frame=mapped)
    progress("loading", total, total)
    return {
        "subscribers": len(subscribers),
        "items": len(items),
        "interactions": len(frames.interactions),
    }
