"""Explanations: a structured reason and a sentence for every recommended slot.

Reason kinds and sentences:

* ``because_you_read`` -- "Because you read <title>": the history item contributing most to a
  collaborative score (anchor_item);
* ``similar`` -- "Similar to <title>": the most similar engaged item (content, anchor_item);
* ``follows_topic`` -- "Because you follow <topic>": a declared topic the item carries;
* ``popular`` -- "Popular with readers this week";
* ``new_in_topic`` -- "New in <topic>": a fresh item in one of the subscriber's topics;
* ``explore`` -- "Something different we think you'll like".

Every anchor is one of the subscriber's own history items or topics (declared, or carried by
items they engaged with); when none applies the reason falls back to ``popular`` / ``explore``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from newsletter.recommend.base import Array, Reason
from newsletter.recommend.collaborative import ItemModel
from newsletter.recommend.content import ContentModel

POPULAR = "Popular with readers this week"
EXPLORE = "Something different we think you'll like"


class Explainer:
    """Build reasons from the fitted collaborative and content models."""

    def __init__(
        self, *, titles: Sequence[str], collaborative: ItemModel | None, content: ContentModel
    ) -> None:
        """Keep references to the fitted models whose anchors name history items."""
        self.titles = titles
        self.collaborative = collaborative
        self.content = content

    def user_topics(self, user: int) -> Counter[str]:
        """Return the subscriber's topics: declared ones first, then those of engaged items."""
        counts: Counter[str] = Counter()
        for topic in self.content.user_topics[user]:
            counts[topic] += 1000
        row = self.content.matrix[user]
        for item in row.indices:
            counts.update(self.content.topics[item])
        return counts

    def explain(self, users: Array, items: Array, sources: Array) -> list[list[Reason]]:
        """Return one Reason per slot, aligned with ``items`` (empty slots are skipped)."""
        collab = np.full(items.shape, -1, dtype=np.int64)
        if self.collaborative is not None:
            collab = self.collaborative.anchors(users, items)
        similar = self.content.anchors(users, items)
        out: list[list[Reason]] = []
        for r, user in enumerate(np.asarray(users)):
            topics = self.user_topics(int(user))
            row = []
            for c, item in enumerate(items[r]):
                if item < 0:
                    continue
                anchors = (int(collab[r, c]), int(similar[r, c]))
                row.append(self._reason(int(user), int(item), str(sources[r, c]), anchors, topics))
            out.append(row)
        return out

    def _reason(
        self, user: int, item: int, source: str, anchors: tuple[int, int], topics: Counter[str]
    ) -> Reason:
        """Choose the reason for one slot from its source and the available anchors."""
        collab, similar = anchors
        if source == "explore":
            return Reason(kind="explore", sentence=EXPLORE)
        if source == "fresh":
            topic = self._shared_topic(item, topics)
            if topic is not None:
                return Reason("new_in_topic", f"New in {topic}", anchor_topic=topic)
        if source == "collaborative" and collab >= 0:
            return Reason("because_you_read", f"Because you read {self.titles[collab]}", collab)
        if source in ("collaborative", "content", "fresh"):
            declared = self.content.topic_anchor(user, item)
            if declared is not None and (source == "content" or similar < 0):
                return Reason("follows_topic", f"Because you follow {declared}", None, declared)
            if similar >= 0:
                return Reason("similar", f"Similar to {self.titles[similar]}", similar)
        return Reason(kind="popular", sentence=POPULAR)

    def _shared_topic(self, item: int, topics: Counter[str]) -> str | None:
        """Return the item's topic the subscriber cares most about, if they share one."""
        shared = [t for t in self.content.topics[item] if topics.get(t, 0) > 0]
        return max(shared, key=lambda t: topics[t]) if shared else None
