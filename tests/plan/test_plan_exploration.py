"""Thompson sampling: picks skip exclusions, propensities are exact bank shares in (0, 1]."""

from __future__ import annotations

import numpy as np

from newsletter.plan.exploration import explore, explore_counts, thompson_bank


def test_share_of_exploration_slots_is_exact_within_one_per_message() -> None:
    rng = np.random.default_rng(1)
    counts = explore_counts(10_000, n_items=8, share=0.15, rng=rng)
    assert set(np.unique(counts)) <= {1, 2}
    assert abs(counts.mean() - 1.2) < 0.02
    assert (explore_counts(5, n_items=8, share=0.0, rng=rng) == 0).all()


def test_picks_avoid_excluded_items_and_log_propensities() -> None:
    rng = np.random.default_rng(2)
    items = np.array([3, 5, 7, 9])
    bank = thompson_bank(
        items=items,
        clicks=np.array([50, 1, 0, 0]),
        exposures=np.array([100, 100, 0, 0]),
        rng=rng,
        draws=500,
    )
    excluded = np.zeros((200, 12), dtype=bool)
    excluded[:100, 3] = True  # half the messages already hold the best item
    first, p1 = explore(bank, excluded, rng=rng)
    second, p2 = explore(bank, excluded, rng=rng)
    assert (first != second).all()
    assert not (first[:100] == 3).any()
    assert (first == 5).mean() < 0.05  # 1 click in 100 exposures: the posterior knows it is bad
    assert (first[100:] == 3).mean() > 0.15  # CTR 0.5 competes with the unexplored items
    for p in (p1, p2):
        assert ((p > 0) & (p <= 1)).all()
    assert np.isin(np.concatenate([first, second]), items).all()


def test_propensity_equals_the_share_of_bank_draws_won() -> None:
    rng = np.random.default_rng(3)
    bank = thompson_bank(items=np.arange(3), clicks=np.zeros(3), exposures=np.zeros(3), rng=rng)
    picks, props = explore(bank, np.zeros((3000, 3), dtype=bool), rng=rng)
    for item in range(3):
        observed = np.mean(picks == item)
        assert abs(observed - props[picks == item][0]) < 0.05
        assert abs(props[picks == item][0] - 1 / 3) < 0.1
