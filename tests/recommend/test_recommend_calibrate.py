"""The popularity weight chosen on the last week: large where bestsellers drive what people
consume, small where tastes do, the configured weight when there is too little to judge."""

from __future__ import annotations

import numpy as np
from recommend_world import NOW

from newsletter.recommend.base import DAY, InteractionData, ItemCatalog
from newsletter.recommend.calibrate import choose_popularity_weight
from newsletter.recommend.hybrid import HybridConfig

WORDS = ["garden soil seeds", "kitchen knife pan", "running shoes track", "camera lens film"]


def clustered_log(*, taste: float, quality_power: float, seed: int = 0) -> tuple:
    """240 users and 200 items in 4 groups; item quality is 1 / rank (ranks shuffled).

    A user's events pick items in proportion to ``quality ** quality_power`` times ``taste``
    for items of their own group and 1 for the others: ``taste`` 1 means tastes do
    not matter (bestsellers drive everything), a large ``taste`` means people stay in their
    group. Ten events over the 8 weeks before the last week, three in the last week.
    """
    rng = np.random.default_rng(seed)
    n_users, n_items = 240, 200
    item_group = np.arange(n_items) % 4
    quality = 1.0 / (rng.permutation(n_items) + 1.0)
    users, items, times = [], [], []
    for u in range(n_users):
        weight = quality**quality_power * np.where(item_group == u % 4, taste, 1.0)
        picks = rng.choice(n_items, size=13, replace=False, p=weight / weight.sum())
        ages = np.r_[rng.uniform(8, 56, 10), rng.uniform(0.1, 6.9, 3)]
        users += [u] * 13
        items += picks.tolist()
        times += (NOW - ages * DAY).tolist()
    data = InteractionData(
        n_users=n_users,
        n_items=n_items,
        user_idx=np.array(users),
        item_idx=np.array(items),
        kind=np.full(len(users), "view"),
        timestamp=np.array(times),
    )
    catalog = ItemCatalog(
        titles=[f"item {i}" for i in range(n_items)],
        texts=[WORDS[g] for g in item_group],
        topics=[[f"group{g}"] for g in item_group],
        published_at=np.full(n_items, NOW - 120 * DAY),
    )
    return data, catalog


def test_bestsellers_world_gets_a_large_popularity_weight() -> None:
    data, catalog = clustered_log(taste=1.0, quality_power=0.5)
    choice = choose_popularity_weight(HybridConfig(), data, catalog, now=NOW, n=8)
    assert choice.users >= 200
    assert choice.weight >= 0.8
    best = max(choice.hits.values())
    assert choice.hits[choice.weight] >= best - np.sqrt(best)  # within one standard error
    assert choice.hits[0.0] < best - np.sqrt(best)  # weight 0 is not


def test_taste_world_keeps_a_small_popularity_weight() -> None:
    data, catalog = clustered_log(taste=200.0, quality_power=0.3)
    choice = choose_popularity_weight(HybridConfig(), data, catalog, now=NOW, n=8)
    assert choice.weight == 0.0  # the configured weight: it is within noise of the best
    assert choice.hits[0.0] > choice.hits[6.0]


def test_too_little_data_keeps_the_configured_weight() -> None:
    data, catalog = clustered_log(taste=1.0, quality_power=1.0)
    few = data.subset(data.user_idx < 20)
    config = HybridConfig(blend={"ease": 1.0, "popularity": 0.3})
    choice = choose_popularity_weight(config, few, catalog, now=NOW, n=8)
    assert choice.weight == 0.3
    assert choice.hits == {}
