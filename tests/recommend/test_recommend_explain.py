"""Every explanation names a real history item or topic of that subscriber."""

from __future__ import annotations

import numpy as np
import pytest
from recommend_world import NOW, block_world

from newsletter.recommend.hybrid import HybridConfig, HybridRecommender
from newsletter.recommend.weighting import consumed_matrix

CONFIGS = {
    "default": HybridConfig(),
    "content-heavy": HybridConfig(blend={"content": 1.0, "fresh": 0.5, "popularity": 0.2}),
    "explore": HybridConfig(explore_slots=2, explore_pool=6, topic_cap=3),
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_every_reason_names_the_subscribers_own_item_or_topic(name: str) -> None:
    """Anchors are history items / declared or engaged topics; sentences carry them."""
    data, catalog = block_world()
    model = HybridRecommender(CONFIGS[name]).fit(data, catalog, now=NOW)
    users = np.arange(data.n_users)
    recs = model.recommend_explained(users, 6)
    history = consumed_matrix(data)
    sentences = {
        "because_you_read": "Because you read ",
        "similar": "Similar to ",
        "follows_topic": "Because you follow ",
        "new_in_topic": "New in ",
        "fresh": "Recently published",
        "popular": "Popular with readers this week",
        "explore": "Something different we think you'll like",
    }
    seen_kinds = set()
    for user, row, items in zip(users, recs.reasons, recs.items, strict=True):
        assert len(row) == int((items >= 0).sum())
        mine = set(history[user].indices.tolist())
        topics = {t for i in mine for t in catalog.topics[i]} | set(data.user_topics[user])
        for reason, item in zip(row, items[items >= 0], strict=True):
            seen_kinds.add(reason.kind)
            assert reason.sentence.startswith(sentences[reason.kind])
            if reason.anchor_item is not None:
                assert reason.anchor_item in mine
                assert catalog.titles[reason.anchor_item] in reason.sentence
            if reason.kind in ("follows_topic", "new_in_topic"):
                assert reason.anchor_topic in topics
                assert reason.anchor_topic in reason.sentence
            if reason.kind == "new_in_topic":  # a topic they chose, which the item carries
                assert reason.anchor_topic in set(data.user_topics[user])
                assert reason.anchor_topic in catalog.topics[int(item)]
            if reason.kind in ("because_you_read", "similar"):
                assert reason.anchor_item is not None
    assert seen_kinds & {"because_you_read", "similar", "follows_topic"}
