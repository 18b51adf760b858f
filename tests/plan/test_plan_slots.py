"""Slot sources: batch anchors equal the model's own, and rankings never leak across batches."""

from __future__ import annotations

import numpy as np

from newsletter.plan.fill import reduce_quotas
from newsletter.plan.slots import ModelSlotSource, anchors_for, history_matrix
from newsletter.recommend.base import InteractionData, ItemCatalog
from newsletter.recommend.collaborative import EASE, ItemKNN
from newsletter.recommend.popular import Popularity

RNG = np.random.default_rng(0)
N_USERS, N_ITEMS, N = 300, 60, 3000
DATA = InteractionData(
    N_USERS,
    N_ITEMS,
    RNG.integers(0, N_USERS, N),
    RNG.integers(0, N_ITEMS, N),
    np.array(["read"] * N),
    RNG.random(N) * 1e6,
)
CATALOG = ItemCatalog(
    [f"t{i}" for i in range(N_ITEMS)], [""] * N_ITEMS, [["a"]] * N_ITEMS, np.full(N_ITEMS, 1e6)
)


def test_batch_anchors_match_the_models_own() -> None:
    users = np.arange(80)
    for model in (EASE(), ItemKNN(k=10)):
        model.fit(DATA, CATALOG, now=1e6)
        items, _ = model.recommend(users, 10)
        assert (
            anchors_for(model, users, items, max_history=N) == model.anchors(users, items)
        ).all()


def test_sections_of_different_batches_never_share_a_ranking() -> None:
    model = EASE().fit(DATA, CATALOG, now=1e6)
    history = history_matrix(N_USERS, N_ITEMS, DATA.user_idx, DATA.item_idx)
    source = ModelSlotSource(
        ranker=model,
        popularity=Popularity().fit(DATA, CATALOG, now=1e6),
        catalog=CATALOG,
        history=history,
        user_topics=[[] for _ in range(N_USERS)],
        now=1e6,
    )
    first = source.candidates("top_picks", np.arange(0, 50), 5).items
    second = source.candidates("top_picks", np.arange(50, 100), 5).items
    expected, _ = model.recommend(np.arange(50, 100), 5, exclude=history)
    assert (second == expected).all() and not (first == second).all()


def test_exploration_slots_come_from_the_largest_sections() -> None:
    assert reduce_quotas([3, 2, 2, 1], 1) == [2, 2, 2, 1]
    assert reduce_quotas([3, 2, 2, 1], 2) == [2, 2, 1, 1]
    assert reduce_quotas([1], 5) == [0]


def test_topic_anchor_is_a_chosen_topic_in_the_items_order_and_never_another() -> None:
    catalog = ItemCatalog(
        ["a", "b", "c"], ["", "", ""], [["x", "y", "z"], ["z"], []], np.full(3, 1e6)
    )
    data = InteractionData(2, 3, np.array([0]), np.array([0]), np.array(["read"]), np.ones(1))
    source = ModelSlotSource(
        ranker=Popularity().fit(data, catalog, now=1e6),
        popularity=Popularity().fit(data, catalog, now=1e6),
        catalog=catalog,
        history=history_matrix(2, 3, np.array([0]), np.array([0])),
        user_topics=[["z", "y"], []],
        now=1e6,
    )
    items = np.array([[0, 1, 2, -1], [0, 1, 2, -1]])
    anchors = source._topic_anchors(np.array([0, 1]), items)
    # user 1 follows no topic: no "New in <topic>" at all (it used to name the item's first)
    assert anchors.tolist() == [["y", "z", None, None], [None, None, None, None]]


def test_trending_weighs_popularity_by_item_age_but_the_holdout_does_not() -> None:
    """Item 0 has the most readers but is old; decayed, the newer item 1 trends first."""
    users = np.array([0, 0, 0, 0, 1, 1, 2])
    items = np.array([0, 0, 0, 0, 1, 1, 2])
    data = InteractionData(4, 3, users, items, np.array(["read"] * 7), np.full(7, 1e6))
    catalog = ItemCatalog(["a", "b", "c"], [""] * 3, [[]] * 3, np.array([0.0, 9e5, 9e5]))
    popularity = Popularity().fit(data, catalog, now=1e6)
    source = ModelSlotSource(
        ranker=popularity,
        popularity=popularity,
        catalog=catalog,
        history=history_matrix(4, 3, np.array([0]), np.array([0])),
        user_topics=[[] for _ in range(4)],
        now=1e6,
        age_decay=np.array([0.1, 1.0, 1.0]),
    )
    assert source.popular(np.array([3]), 3).items[0].tolist() == [0, 1, 2]
    assert source.candidates("trending", np.array([3]), 3).items[0].tolist() == [1, 2, 0]
    # what a reader already consumed stays out of both
    assert source.candidates("trending", np.array([0]), 3).items[0].tolist() == [1, 2, -1]
