"""The popularity weight chosen on the last week: large where bestsellers drive what people
consume, small where tastes do, the configured weight when there is too little to judge."""

from __future__ import annotations

import numpy as np
from recommend_world import NOW, clustered_log

from newsletter.recommend.calibrate import choose_popularity_weight
from newsletter.recommend.hybrid import HybridConfig


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
