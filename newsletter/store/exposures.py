"""The emails' own feedback for the click model: a campaign's sent slots and their clicks.

:func:`load_exposures` reads the slots of a campaign's messages sent since a time (who, which
item, position, section, whether an exploration policy chose it, when it was sent, in which
run) and the human clicks on them, and returns a
:class:`~newsletter.recommend.clicks.ExposureLog` in the matrices' indices (a slot's send is
its run). Slots whose subscriber or item is not in the matrices are left out. A click counts
once per slot; machine clicks (scanners, proxies) never count.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import Connection, Engine, and_, select

from newsletter.enums import MessageStatus
from newsletter.recommend.clicks import ExposureLog
from newsletter.store.matrices import Matrices, epoch_seconds
from newsletter.tables import (
    campaign_table,
    event_table,
    human_event,
    message_table,
    run_table,
    slot_table,
)

M = message_table.c
S = slot_table.c
E = event_table.c
R = run_table.c
C = campaign_table.c
Array = np.ndarray
EXPLORE_SOURCE = "explore"  # the source name of exploration slots (plan/fill.py)


def human_clicked_slots(c: Connection, sent: Any) -> set[tuple[int, int]]:
    """(message id, position) of every slot a person clicked, in the messages ``sent`` selects
    (a condition on the message table). Read apart from the slots and matched with
    :func:`is_clicked`: a correlated lookup per slot row cost more than both reads."""
    query = (
        select(E.message_id, E.slot_position)
        .select_from(event_table.join(message_table, M.id == E.message_id))
        .where(sent, E.kind == "click", human_event, E.slot_position.is_not(None))
    )
    return {(int(mid), int(pos)) for mid, pos in c.execute(query).cursor.fetchall()}


def is_clicked(messages: Any, positions: Any, clicked: set[tuple[int, int]]) -> Array:
    """Per slot (aligned message ids and positions), whether it is in ``clicked``."""
    pairs = zip(messages, positions, strict=True)
    return np.array([(int(a), int(b)) in clicked for a, b in pairs], dtype=bool)


def load_exposures(engine: Engine, m: Matrices, *, campaign: str, since: datetime) -> ExposureLog:
    """The campaign's slots sent at or after ``since``, with human clicks (see module doc)."""
    runs = select(R.id).join(campaign_table, C.id == R.campaign_id).where(C.name == campaign)
    sent = and_(M.status == MessageStatus.sent, M.sent_at >= since, M.run_id.in_(runs))
    with engine.connect() as c:
        slots = c.execute(
            select(
                S.message_id,
                S.position,
                M.subscriber_id,
                S.item_id,
                S.section,
                S.source,
                epoch_seconds(c, column=M.sent_at),
                M.run_id,
            )
            .select_from(slot_table.join(message_table, M.id == S.message_id))
            .where(sent)
        ).cursor.fetchall()
        clicked = human_clicked_slots(c, sent)
    cols: list[Any] = list(zip(*slots, strict=True)) if slots else [[] for _ in range(8)]
    users = m.user_index(np.array(cols[2], dtype=np.int64))
    items = m.item_index(np.array(cols[3], dtype=np.int64))
    keep = (users >= 0) & (items >= 0)
    hit = is_clicked(cols[0], cols[1], clicked)
    return ExposureLog(
        user_idx=users[keep],
        item_idx=items[keep],
        position=np.array(cols[1], dtype=np.int64)[keep],
        section=np.array(cols[4], dtype=object)[keep],
        clicked=hit[keep],
        randomised=(np.array(cols[5], dtype=object) == EXPLORE_SOURCE)[keep],
        sent_at=np.array(cols[6], dtype=np.float64)[keep],
        send=np.array(cols[7], dtype=np.int64)[keep],
    )
