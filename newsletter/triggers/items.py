"""The items of a triggered message, chosen with the run's fitted model (no database here).

* ``abandoned_cart``: the carted items ("In your cart since ..."), then items that share a
  topic with them, ranked by the recommender ("Similar to <title>");
* ``topic_reads``: items of the topic the subscriber has not read, fresh ones first (within
  the campaign's ``fresh_days``), ranked by the recommender ("Because you read A, B and C");
* ``welcome``: half the most popular items, half the most popular of the signup topic;
* the ``popular`` arm gets the popularity ranking in the same template, whatever the rule.

A subscriber the model has not seen (a new signup) is ranked by popularity.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from newsletter.enums import Arm, TriggerKind
from newsletter.plan.fill import PlannedSlot
from newsletter.plan.runs import RunModel
from newsletter.recommend.base import DAY
from newsletter.triggers.rules import cart_reason, join_titles

Array = np.ndarray
POPULAR_TEXT = "Popular with readers this week"


class Picker:
    """Item choice over one fitted model (topic masks cached per topic)."""

    def __init__(self, model: RunModel, *, now: datetime, fresh_days: float) -> None:
        self.model = model
        source: Any = model.parts.source
        self.source = source
        self.catalog: Any = source.catalog
        self.history = model.parts.history
        self.now = now.timestamp()
        published = np.asarray(self.catalog.published_at, dtype=np.float64)
        self.live = self._live()
        self.fresh = self.live & (published >= self.now - fresh_days * DAY)
        self._topics: dict[str, Array] = {}

    def _live(self) -> Array:
        active = self.catalog.active
        n = self.catalog.n_items
        live = np.ones(n, bool) if active is None else np.asarray(active, bool).copy()
        if self.catalog.expires_at is not None:
            live &= np.asarray(self.catalog.expires_at, dtype=np.float64) > self.now
        return live

    def topic_mask(self, topic: str | None) -> Array:
        if topic is None:
            return np.zeros(self.catalog.n_items, bool)
        if topic not in self._topics:
            self._topics[topic] = np.array([topic in ts for ts in self.catalog.topics], bool)
        return self._topics[topic]

    def index(self, item_ids: Sequence[int]) -> list[int]:
        """Catalogue indices of item ids (ids the model does not know are dropped)."""
        known = self.model.item_ids
        out = []
        for item in item_ids:
            pos = int(np.searchsorted(known, item))
            if pos < len(known) and known[pos] == item:
                out.append(pos)
        return out

    def ranked(self, user: int, mask: Array, n: int, skip: Sequence[int] = ()) -> list[int]:
        """The best `n` items of `mask` for the user (popularity when the model lacks them)."""
        mask = mask.copy()
        mask[list(skip)] = False
        if user >= 0:
            mask &= np.asarray(self.history[user].toarray()[0] == 0)
            items, _ = self.source.ranker.recommend(
                np.array([user]), n, exclude=self.history, candidates=mask
            )
            return [int(i) for i in items[0] if i >= 0]
        return [int(i) for i in self.source.popularity.ranking(n, candidates=mask)]

    def titles(self, indices: Sequence[int]) -> list[str]:
        return [str(self.catalog.titles[i]) for i in indices]


def slot(
    section: str, item: int, source: str, kind: str, text: str, anchor: str | None = None
) -> PlannedSlot:
    """A deterministic slot (score and propensity 1)."""
    return PlannedSlot(section, item, source, 1.0, 1.0, kind, anchor, text)


def popular_slots(picker: Picker, user: int, n: int) -> list[PlannedSlot]:
    """The popularity holdout: the most popular live items the subscriber has not consumed."""
    mask = picker.live.copy()
    if user >= 0:
        mask &= np.asarray(picker.history[user].toarray()[0] == 0)
    items = [int(i) for i in picker.source.popularity.ranking(n, candidates=mask)]
    return [slot("Popular", i, "popularity", "popular", POPULAR_TEXT) for i in items]


def cart_slots(
    picker: Picker, user: int, context: Mapping[str, Any], n: int, tz: ZoneInfo
) -> list[PlannedSlot]:
    """The carted items (oldest cart first), then similar items."""
    carts = sorted(context.get("carts", []), key=lambda c: c[1])
    out: list[PlannedSlot] = []
    seen: list[int] = []
    for item_id, carted_at in carts:
        for i in picker.index([item_id]):
            if i in seen:
                continue
            since = cart_reason(datetime.fromisoformat(carted_at), tz)
            out.append(slot("In your cart", i, "cart", "cart", since))
            seen.append(i)
    if not seen or len(out) >= n:
        return out[:n]
    similar = np.zeros(picker.catalog.n_items, bool)
    for i in seen:
        for topic in picker.catalog.topics[i]:
            similar |= picker.topic_mask(topic)
    anchor = picker.titles(seen[:1])[0]
    for i in picker.ranked(user, similar & picker.live, n - len(out), skip=seen):
        out.append(
            slot("You might also like", i, "similar", "similar", f"Similar to {anchor}", anchor)
        )
    return out


def topic_slots(picker: Picker, user: int, context: Mapping[str, Any], n: int) -> list[PlannedSlot]:
    """Unread items of the topic, fresh first, ranked by the recommender."""
    topic = str(context.get("topic"))
    read = picker.index(context.get("read_item_ids", []))
    because = f"Because you read {join_titles(picker.titles(read))}"
    mask = picker.topic_mask(topic)
    items = picker.ranked(user, mask & picker.fresh, n, skip=read)
    if len(items) < n:
        items += picker.ranked(user, mask & picker.live, n - len(items), skip=[*read, *items])
    section = f"More on {topic}"
    return [slot(section, i, "topic", "because_you_read", because, topic) for i in items]


def welcome_slots(
    picker: Picker, user: int, context: Mapping[str, Any], n: int
) -> list[PlannedSlot]:
    """Half popular, half the most popular of the signup topic (all popular without one)."""
    topic = context.get("topic")
    in_topic = picker.topic_mask(topic) & picker.live
    topical = [int(i) for i in picker.source.popularity.ranking(n // 2, candidates=in_topic)]
    rest = picker.live.copy()
    rest[topical] = False
    popular = [int(i) for i in picker.source.popularity.ranking(n - len(topical), candidates=rest)]
    out = [slot("Popular right now", i, "popularity", "popular", POPULAR_TEXT) for i in popular]
    text = f"Popular in {topic}"
    out += [slot(f"In {topic}", i, "popularity", "topic", text, topic) for i in topical]
    return out


def choose(
    picker: Picker,
    *,
    kind: str,
    arm: str,
    user: int,
    context: Mapping[str, Any],
    n: int,
    tz: ZoneInfo,
) -> list[PlannedSlot]:
    """The slots of one triggered message."""
    if arm == Arm.popular:
        return popular_slots(picker, user, n)
    if kind == TriggerKind.abandoned_cart:
        return cart_slots(picker, user, context, n, tz)
    if kind == TriggerKind.topic_reads:
        return topic_slots(picker, user, context, n)
    return welcome_slots(picker, user, context, n)
