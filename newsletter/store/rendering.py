"""The rows a stored message needs to be rendered again, for a batch of messages at once.

    render_rows(engine, *, message_ids) -> RenderRows

Four queries per batch whatever its size (messages with their subscriber, run and campaign;
slots; items; the trigger firings of triggered messages): delivery renders a batch of
hundreds, the view-in-browser route and previews a batch of one, through the same function.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, select

from newsletter.store.triggers import message_trigger
from newsletter.tables import (
    campaign_table,
    item_table,
    message_table,
    run_table,
    slot_table,
    subscriber_table,
)

M = message_table.c
S = subscriber_table.c
R = run_table.c
CA = campaign_table.c
IT = item_table.c
SL = slot_table.c


@dataclass
class RenderRows:
    """The rows one batch of messages needs for rendering."""

    messages: dict[int, Any]  # message id -> row (arm, subscriber_*, run_*, campaign_*)
    slots: dict[int, list[Any]]  # message id -> slot rows by position
    items: dict[int, Any]  # item id -> row (id, title, url, image_url, summary, topics)
    triggers: dict[int, dict[str, Any]]  # message id -> its firing (triggered messages only)


_HEADS = (
    select(
        M.id,
        M.arm,
        S.id.label("subscriber_id"),
        S.email,
        S.name,
        S.timezone,
        S.attributes,
        R.id.label("run_id"),
        R.scheduled_for,
        CA.id.label("campaign_id"),
        CA.name.label("campaign_name"),
        CA.kind.label("campaign_kind"),
        CA.config.label("campaign_config"),
    )
    .join(subscriber_table, S.id == M.subscriber_id)
    .join(run_table, R.id == M.run_id)
    .join(campaign_table, CA.id == R.campaign_id)
)
_SLOTS = select(
    SL.message_id,
    SL.position,
    SL.section,
    SL.item_id,
    SL.source,
    SL.reason_kind,
    SL.reason_text,
    SL.reason_anchor,
)
_ITEMS = select(IT.id, IT.title, IT.url, IT.image_url, IT.summary, IT.topics)


def render_rows(engine: Engine, *, message_ids: Sequence[int]) -> RenderRows:
    """Message, subscriber, run, campaign, slot, item and trigger rows of a batch of messages
    (a message without its subscriber, run or campaign is simply absent)."""
    ids = [int(i) for i in message_ids]
    with engine.connect() as c:
        heads = c.execute(_HEADS.where(M.id.in_(ids))).all()
        slot_rows = c.execute(
            _SLOTS.where(SL.message_id.in_(ids)).order_by(SL.message_id, SL.position)
        ).all()
        wanted = sorted({int(r.item_id) for r in slot_rows})
        items = c.execute(_ITEMS.where(IT.id.in_(wanted))).all() if wanted else []
        triggers = {
            int(h.id): message_trigger(c, run_id=h.run_id, subscriber_id=h.subscriber_id)
            for h in heads
            if h.campaign_kind == "trigger"
        }
    slots: dict[int, list[Any]] = {i: [] for i in ids}
    for row in slot_rows:
        slots[int(row.message_id)].append(row)
    return RenderRows({int(r.id): r for r in heads}, slots, {int(r.id): r for r in items}, triggers)


def latest_message_id(engine: Engine, *, subscriber_id: int | None) -> int | None:
    """The newest message (of one subscriber, or of anyone when None)."""
    query = select(M.id).order_by(M.id.desc()).limit(1)
    if subscriber_id is not None:
        query = query.where(M.subscriber_id == subscriber_id)
    with engine.connect() as c:
        found = c.execute(query).scalar()
    return None if found is None else int(found)


def subscriber_row(engine: Engine, *, subscriber_id: int) -> Any | None:
    """One subscriber's row (id, email, name, timezone, attributes), or None."""
    with engine.connect() as c:
        return c.execute(
            select(S.id, S.email, S.name, S.timezone, S.attributes).where(S.id == subscriber_id)
        ).first()


def active_items(engine: Engine, *, limit: int) -> list[Any]:
    """Up to `limit` active items (their render columns), for sample data."""
    with engine.connect() as c:
        return list(c.execute(_ITEMS.where(IT.active).order_by(IT.id).limit(limit)).all())
