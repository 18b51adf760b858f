"""Hybrid and generators on synthetic data with known answers (blocks, a cold item, rules)."""

from __future__ import annotations

import numpy as np
import pytest
from recommend_world import NOW, block_world

from newsletter.recommend.base import DAY, Feedback, ItemCatalog
from newsletter.recommend.collaborative import EASE, ItemKNN
from newsletter.recommend.content import ContentModel
from newsletter.recommend.hybrid import HybridConfig, HybridRecommender
from newsletter.recommend.popular import Popularity
from newsletter.recommend.weighting import consumed_matrix

SCIENCE_USERS = np.arange(10)
SPORTS_USERS = np.arange(10, 20)
COLD_ITEM = 20


@pytest.mark.parametrize(
    "factory", [lambda: ItemKNN(k=20), lambda: EASE(lam=1.0), HybridRecommender]
)
def test_block_preferences_are_recovered(factory) -> None:
    """Science readers get unread science items first; sports readers get sports items."""
    data, catalog = block_world()
    model = factory().fit(data, catalog, now=NOW)
    items, scores = model.recommend(np.arange(20), 4, exclude=consumed_matrix(data))
    science = np.isin(items[SCIENCE_USERS], [*range(10), COLD_ITEM])
    sports = (items[SPORTS_USERS] >= 10) & (items[SPORTS_USERS] < 20)
    assert science[:, 0].all() and sports[:, 0].all()
    assert np.all(science | (scores[SCIENCE_USERS] < 1e-6))
    assert np.all(sports | (scores[SPORTS_USERS] < 1e-6))


def test_cold_item_is_found_only_by_content() -> None:
    """Item 20 has no interactions: collaborative scores are 0, content ranks it for science."""
    data, catalog = block_world()
    ease = EASE(lam=1.0).fit(data, catalog, now=NOW)
    assert np.all(ease.score(SCIENCE_USERS)[:, COLD_ITEM] == 0)
    content = ContentModel().fit(data, catalog, now=NOW)
    items, _ = content.recommend(SCIENCE_USERS, 5, exclude=consumed_matrix(data))
    assert np.all(np.any(items == COLD_ITEM, axis=1))
    sports, _ = content.recommend(SPORTS_USERS, 5, exclude=consumed_matrix(data))
    assert not np.any(sports == COLD_ITEM)


def test_users_without_history_fall_back_to_declared_topics_then_popularity() -> None:
    """User 20 declared science: science items and a follows_topic reason; user 21: popular."""
    data, catalog = block_world()
    model = HybridRecommender().fit(data, catalog, now=NOW)
    recs = model.recommend_explained(np.array([20, 21]), 3)
    assert np.all(np.isin(recs.items[0], [*range(10), COLD_ITEM]))
    assert any(r.kind == "follows_topic" and r.anchor_topic == "science" for r in recs.reasons[0])
    assert list(recs.items[1]) == list(model.popular_items(3))
    assert all(r.kind == "popular" for r in recs.reasons[1])


def test_consumed_inactive_expired_and_rule_failing_items_are_never_returned() -> None:
    """Re-ranking removes consumed items, inactive/expired ones and failed attribute rules."""
    data, catalog = block_world()
    active = np.ones(21, dtype=bool)
    active[3] = False
    expires = np.full(21, np.inf)
    expires[5] = NOW - DAY
    attrs = [{"in_stock": i != 7} for i in range(21)]
    catalog = ItemCatalog(
        titles=catalog.titles,
        texts=catalog.texts,
        topics=catalog.topics,
        published_at=catalog.published_at,
        active=active,
        expires_at=expires,
        attributes=attrs,
    )
    config = HybridConfig(filters={"in_stock": True})
    model = HybridRecommender(config).fit(data, catalog, now=NOW)
    items, _ = model.recommend(np.arange(22), 10)
    consumed = consumed_matrix(data)
    for user, row in enumerate(items):
        assert not set(row.tolist()) & {3, 5, 7}
        assert not set(row.tolist()) & set(consumed[user].indices.tolist())
    assert not set(model.popular_items(21).tolist()) & {3, 5, 7}


def test_topic_cap_and_mmr_mix_topics_without_duplicates() -> None:
    """With a cap of 2 per topic, a science reader's top 4 holds at most 2 science items."""
    data, catalog = block_world()
    model = HybridRecommender(HybridConfig(topic_cap=2, mmr_lambda=0.7)).fit(data, catalog, now=NOW)
    items, _ = model.recommend(SCIENCE_USERS, 4)
    for row in items:
        science = sum(1 for i in row if i < 10 or i == COLD_ITEM)
        assert science <= 2
        assert len(set(row.tolist())) == 4


def test_exploration_is_logged_and_deterministic() -> None:
    """One explored slot per list, with source 'explore', propensity < 1, same on re-run."""
    data, catalog = block_world()
    config = HybridConfig(explore_slots=1, explore_pool=5, seed=3)
    model = HybridRecommender(config).fit(data, catalog, now=NOW)
    first = model.recommend_explained(np.arange(20), 4)
    again = model.recommend_explained(np.arange(20), 4)
    assert np.array_equal(first.items, again.items)
    assert np.all(first.sources[:, -1] == "explore")
    assert np.all(first.propensities[:, -1] < 1) and np.all(first.propensities[:, :-1] == 1)
    assert all(row[-1].kind == "explore" for row in first.reasons)


def test_logistic_ranker_is_learned_from_feedback() -> None:
    """Clicks on popular items only teach the ranker to weigh popularity up."""
    data, catalog = block_world()
    rng = np.random.default_rng(0)
    users = rng.integers(0, 20, size=400)
    items = rng.integers(0, 21, size=400)
    pop = Popularity(half_life_days=None).fit(data, catalog, now=NOW).item_scores
    clicked = pop[items] > np.median(pop)
    model = HybridRecommender().fit(
        data, catalog, now=NOW, feedback=Feedback(users, items, clicked)
    )
    assert model.ranker.learned
    assert model.ranker.weights[5 - 1] > 0  # FEATURES[4] == "popularity"
    untaught = HybridRecommender().fit(
        data, catalog, now=NOW, feedback=Feedback(users, items, np.zeros(400, dtype=bool))
    )
    assert not untaught.ranker.learned


def test_sections_return_their_own_source() -> None:
    """The fresh section returns only fresh items; the trending section follows popularity."""
    data, catalog = block_world()
    model = HybridRecommender().fit(data, catalog, now=NOW)
    fresh = model.section("fresh", SCIENCE_USERS, 3)
    assert np.all(fresh.items[:, 0] == COLD_ITEM) and np.all(fresh.items[:, 1:] == -1)
    # the science readers chose no topic: no "New in science", but a true reason (a science
    # story they read that this one resembles); user 20 chose science: "New in science"
    assert all(r.kind == "similar" and r.anchor_item is not None for r in fresh.reasons[0])
    chosen = model.section("fresh", np.array([20]), 3)
    assert chosen.items[0, 0] == COLD_ITEM
    assert [(r.kind, r.anchor_topic) for r in chosen.reasons[0]] == [("new_in_topic", "science")]
    with pytest.raises(ValueError, match="unknown section"):
        model.section("bogus", SCIENCE_USERS, 3)
