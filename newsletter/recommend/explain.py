"""Explanations: a structured reason and a sentence for every recommended slot.

Reason kinds and sentences:

* ``because_you_read`` -- "Because you read <title>": the history item contributing most to a
  collaborative score (anchor_item);
* ``similar`` -- "Similar to <title>": the most similar engaged item (content, anchor_item);
* ``follows_topic`` -- "Because you follow <topic>": a declared topic the item carries;
* ``popular`` -- "Popular with readers this week";
* ``new_in_topic`` -- "New in <topic>": a fresh item carrying a topic the subscriber chose;
* ``fresh`` -- "Recently published": a fresh item with no anchor of theirs;
* ``explore`` -- "Something different we think you'll like".

Every anchor is one of the subscriber's own history items or chosen topics, and every topic
named is also one the item carries; when none applies the reason falls back to ``fresh`` (a
fresh item), ``popular`` or ``explore``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from newsletter.recommend.base import Array, Reason
from newsletter.recommend.collaborative import ItemModel
from newsletter.recommend.content import ContentModel

POPULAR = "Popular with readers this week"
FRESH = "Recently published"
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

    def explain(self, users: Array, items: Array, sources: Array) -> list[list[Reason]]:
        """Return one Reason per slot, aligned with ``items`` (empty slots are skipped)."""
        collab = np.full(items.shape, -1, dtype=np.int64)
        if self.collaborative is not None:
            collab = self.collaborative.anchors(users, items)
        similar = self.content.anchors(users, items)
        out: list[list[Reason]] = []
        for r, user in enumerate(np.asarray(users)):
            row = []
            for c, item in enumerate(items[r]):
                if item < 0:
                    continue
                anchors = (int(collab[r, c]), int(similar[r, c]))
                row.append(self._reason(int(user), int(item), str(sources[r, c]), anchors))
            out.append(row)
        return out

    def _reason(self, user: int, item: int, source: str, anchors: tuple[int, int]) -> Reason:
        """Choose the reason for one slot from its source and the available anchors."""
        collab, similar = anchors
        if source == "explore":
            return Reason(kind="explore", sentence=EXPLORE)
        if source == "fresh":
            topic = self.content.topic_anchor(user, item)  # a chosen topic the item carries
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
        if source == "fresh":
            return Reason(kind="fresh", sentence=FRESH)
        return Reason(kind="popular", sentence=POPULAR)
