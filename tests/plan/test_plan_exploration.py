"""Thompson sampling: picks skip exclusions, propensities are exact bank shares in (0, 1]."""

from __future__ import annotations

import numpy as np

from newsletter.plan.exploration import explore, explore_counts, prior_means, thompson_bank


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


def test_prior_means_scale_the_campaign_ctr_by_relative_site_popularity() -> None:
    means, strength = prior_means(np.array([0.0, 1.0, 3.0]), clicks=9, exposures=450)
    # m0 = (9 + 1) / (450 + 50) = 0.02; appeal = (p + 4/3) / (8/3) = 0.5, 0.875, 1.625
    np.testing.assert_allclose(means, [0.01, 0.0175, 0.0325])
    assert strength == 100.0
    clipped, _ = prior_means(np.array([0.0, 0.0, 100.0]), clicks=0, exposures=0, spread=1.5)
    np.testing.assert_allclose(clipped / clipped[0], [1.0, 1.0, 1.5 / (2 / 3)])
    flat, _ = prior_means(np.zeros(4), clicks=0, exposures=0)
    np.testing.assert_allclose(flat, 0.02)  # nothing read yet: the 2% prior for every item


def test_informative_prior_explores_plausible_items_first() -> None:
    """Five items with a 5% prior among fifty at 1%: with the prior they win most picks, with
    the uniform Beta(1, 1) about their share of the pool (5 / 55)."""
    items = np.arange(55)
    prior = np.r_[np.full(50, 0.01), np.full(5, 0.05)]
    zeros = np.zeros(55)
    informed = thompson_bank(
        items=items,
        clicks=zeros,
        exposures=zeros,
        rng=np.random.default_rng(3),
        draws=500,
        prior_mean=prior,
        prior_strength=100.0,
    )
    uniform = thompson_bank(
        items=items, clicks=zeros, exposures=zeros, rng=np.random.default_rng(3), draws=500
    )
    excluded = np.zeros((2000, 55), dtype=bool)
    picked, p = explore(informed, excluded.copy(), rng=np.random.default_rng(4))
    assert (picked >= 50).mean() > 0.6
    assert ((p > 0) & (p <= 1)).all()
    baseline, _ = explore(uniform, excluded.copy(), rng=np.random.default_rng(4))
    assert (baseline >= 50).mean() < 0.25


def test_mixed_with_personal_candidates_logs_the_mixture_probability() -> None:
    """Bank over items 0-2 (uniform), personal lists {3, 4} or {1, 5} (5 excluded in half the
    rows), bank share 0.3: the logged propensity of every pick is its exact mixture
    probability, and matches how often it is picked."""
    rng = np.random.default_rng(5)
    bank = thompson_bank(
        items=np.arange(3), clicks=np.zeros(3), exposures=np.zeros(3), rng=rng, draws=600
    )
    n = 40_000
    personal = np.where(np.arange(n)[:, None] % 2 == 0, [[3, 4, -1]], [[1, 5, -1]])
    excluded = np.zeros((n, 6), dtype=bool)
    excluded[1::4, 5] = True  # a quarter of the rows: the list {1, 5} has only 1 left
    picks, props = explore(bank, excluded, rng=rng, personal=personal, bank_share=0.3)
    shares = {i: float(np.mean(bank.top[:, 0] == i)) for i in range(3)}
    groups = {
        "even": np.arange(n) % 2 == 0,
        "odd, 5 free": np.arange(n) % 4 == 3,
        "odd, 5 excluded": np.arange(n) % 4 == 1,
    }
    expected = {
        "even": {0: 0.3 * shares[0], 1: 0.3 * shares[1], 2: 0.3 * shares[2], 3: 0.35, 4: 0.35},
        "odd, 5 free": {0: 0.3 * shares[0], 1: 0.3 * shares[1] + 0.35, 2: 0.3 * shares[2], 5: 0.35},
        "odd, 5 excluded": {0: 0.3 * shares[0], 1: 0.3 * shares[1] + 0.7, 2: 0.3 * shares[2]},
    }
    for name, rows in groups.items():
        for item, p in expected[name].items():
            hit = rows & (picks == item)
            np.testing.assert_allclose(props[hit], p)
            assert abs(hit.sum() / rows.sum() - p) < 0.02, (name, item)
        assert set(np.unique(picks[rows]).tolist()) == set(expected[name])
    assert excluded[np.arange(n), picks].all()  # the picks are now excluded


def test_personal_candidates_alone_when_the_bank_is_empty() -> None:
    rng = np.random.default_rng(6)
    empty = thompson_bank(
        items=np.zeros(0, dtype=np.int64), clicks=np.zeros(0), exposures=np.zeros(0), rng=rng
    )
    excluded = np.zeros((3, 4), dtype=bool)
    excluded[0, 2] = True
    personal = np.array([[2, 3], [2, 3], [-1, -1]])
    picks, props = explore(empty, excluded, rng=rng, personal=personal, bank_share=0.5)
    assert picks[0] == 3 and props[0] == 1.0
    assert picks[1] in (2, 3) and props[1] == 0.5
    assert picks[2] == -1 and props[2] == 0.0
