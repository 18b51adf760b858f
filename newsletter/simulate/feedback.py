"""Simulated readers: opens, clicks and unsubscribes drawn from the world's hidden tastes.

A reader opens a message with `open_rate`; an opened message's slot is clicked with a
probability that grows with the reader's taste for the item's topic and falls with its
position. Some readers sit behind Apple Mail Privacy Protection (every message gets a machine
open a minute after delivery) or a corporate link scanner (every link is clicked by a machine
within seconds): those events are stored flagged, as the tracking service would flag them,
so reports and learning can be shown to ignore them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from newsletter.db import Engine
from newsletter.simulate.world import World
from newsletter.store.bulk import bulk_insert
from newsletter.store.reporting import sent_slots


@dataclass(frozen=True)
class ReaderModel:
    """How simulated readers behave."""

    open_rate: float = 0.4
    click_scale: float = 0.9
    position_decay: float = 0.15
    unsubscribe_rate: float = 0.004
    apple_mpp_share: float = 0.3
    scanner_share: float = 0.05


def _frame(rows: Sequence[tuple[object, ...]], world: World) -> pd.DataFrame:
    frame = pd.DataFrame(
        rows,
        columns=[
            "message_id",
            "subscriber_id",
            "key",
            "arm",
            "sent_at",
            "position",
            "item_id",
            "item",
        ],
    )
    frame["user"] = frame["key"].str.removeprefix("reader-").astype(int) - 1
    frame["topic"] = world.item_topic[frame["item"].str.removeprefix("article-").astype(int) - 1]
    frame["sent_at"] = pd.to_datetime(frame["sent_at"], utc=True)
    return frame


def _event(
    frame: pd.DataFrame, kind: str, seconds: np.ndarray, machine: bool, reason: str | None
) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "message_id": frame["message_id"].to_numpy(),
            "subscriber_id": frame["subscriber_id"].to_numpy(),
            "slot_position": frame["position"].to_numpy() if kind == "click" else None,
            "item_id": frame["item_id"].to_numpy() if kind == "click" else None,
            "kind": kind,
            "occurred_at": frame["sent_at"] + pd.to_timedelta(seconds, unit="s"),
            "is_machine": machine,
            "machine_reason": reason,
        }
    )


def simulate_feedback(
    engine: Engine, *, run_id: int, world: World, seed: int = 11, model: ReaderModel | None = None
) -> dict[str, int]:
    """Draw and store the events of one run's sent messages; returns counts by kind."""
    model = model or ReaderModel()
    slots = _frame(sent_slots(engine, run_id=run_id), world)
    if slots.empty:
        return {}
    rng = np.random.default_rng(seed)
    messages = slots.drop_duplicates("message_id")
    users = world.preferences.shape[0]
    mpp_user = np.less(rng.random(users), model.apple_mpp_share)
    scanner_user = np.less(rng.random(users), model.scanner_share)
    opened = messages[rng.random(len(messages)) < model.open_rate]
    taste = world.preferences[slots["user"], slots["topic"]] * world.preferences.shape[1]
    decay = 1 + model.position_decay * slots["position"].to_numpy()
    p_click = np.clip(model.click_scale * 0.1 * taste / decay, 0, 1)
    clicked = slots[
        slots["message_id"].isin(opened["message_id"]) & (rng.random(len(slots)) < p_click)
    ]
    mpp = messages[mpp_user[messages["user"]]]
    scanned = slots[scanner_user[slots["user"]]]
    unsub = opened[rng.random(len(opened)) < model.unsubscribe_rate]
    events = pd.concat(
        [
            _event(opened, "open", rng.uniform(600, 86400, len(opened)), False, None),
            _event(clicked, "click", rng.uniform(900, 90000, len(clicked)), False, None),
            _event(mpp, "open", rng.uniform(20, 120, len(mpp)), True, "apple-mpp"),
            _event(scanned, "click", rng.uniform(1, 8, len(scanned)), True, "link-scanner"),
            _event(unsub, "unsubscribe", rng.uniform(900, 90000, len(unsub)), False, None),
        ],
        ignore_index=True,
    )
    with engine.begin() as connection:
        bulk_insert(connection, table="event", frame=events, ignore_conflicts=False)
    return {
        "human_opens": len(opened),
        "human_clicks": len(clicked),
        "machine_opens": len(mpp),
        "machine_clicks": len(scanned),
        "unsubscribes": len(unsub),
    }
