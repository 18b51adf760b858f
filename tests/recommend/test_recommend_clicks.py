"""Click model: a planted feature effect and a planted position bias are recovered from a log."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from recommend_world import NOW, block_world

from newsletter.recommend.base import DAY, ItemCatalog
from newsletter.recommend.clickrank import CLICK_FEATURES, ClickRanker, ShownBefore, _sends
from newsletter.recommend.clicks import (
    ExposureLog,
    PositionBias,
    estimate_position_bias,
    fit_click_model,
    joint_position_bias,
)
from newsletter.recommend.hybrid import HybridConfig
from newsletter.recommend.weighting import consumed_matrix

THETA = np.array([1.0, 0.7, 0.55, 0.45, 0.4, 0.34, 0.3, 0.27])  # not a power law
BETA = np.array([0.6, -0.8])
INTERCEPT = -2.5


def planted_log(*, messages: int = 15_000, randomised_share: float = 0.25, seed: int = 0):
    """Messages of 8 slots; ranked by true appeal (confounded) unless randomised.

    Appeal ``r = exp(-2.5 + 0.6 x1 - 0.8 x2)``; a click needs the slot examined
    (``THETA[position]``) and liked (``r``).
    """
    rng = np.random.default_rng(seed)
    slots = len(THETA)
    x1 = rng.normal(0.0, 1.0, (messages, slots))
    x2 = rng.uniform(0.0, 1.0, (messages, slots))
    appeal = np.exp(INTERCEPT + BETA[0] * x1 + BETA[1] * x2)
    randomised = rng.random(messages) < randomised_share
    order = np.argsort(-appeal, axis=1)
    shuffled = np.argsort(rng.random((messages, slots)), axis=1)
    order[randomised] = shuffled[randomised]
    x1, x2, appeal = (np.take_along_axis(a, order, axis=1) for a in (x1, x2, appeal))
    clicked = rng.random((messages, slots)) < THETA[None, :] * appeal
    n = messages * slots
    log = ExposureLog(
        user_idx=np.repeat(np.arange(messages), slots),
        item_idx=np.zeros(n, dtype=np.int64),
        position=np.tile(np.arange(slots), messages),
        section=np.full(n, "top"),
        clicked=clicked.ravel(),
        randomised=np.repeat(randomised, slots),
        sent_at=np.full(n, NOW),
    )
    return np.column_stack([x1.ravel(), x2.ravel()]), log


def test_position_bias_is_recovered_from_the_randomised_slots() -> None:
    """theta_k from randomised messages only: within 0.06 of the planted curve everywhere."""
    _, log = planted_log()
    bias = estimate_position_bias(log)
    assert bias is not None and bias.theta[0] == 1.0
    np.testing.assert_allclose(bias.theta, THETA, atol=0.06)
    naive = clicks_per_position(log, randomised=False)
    assert naive[-1] / naive[0] < 0.5 * THETA[-1]  # ranked slots confound appeal and position


def clicks_per_position(log: ExposureLog, *, randomised: bool) -> np.ndarray:
    """Click rate per position over randomised or ranked messages."""
    sel = np.asarray(log.randomised) == randomised
    pos = log.position[sel]
    return np.bincount(pos, weights=log.clicked[sel]) / np.bincount(pos)


def test_feature_effects_are_recovered_by_inverse_propensity_weighting() -> None:
    """The IPW fit recovers the planted weights within 12%; ignoring position does not."""
    design, log = planted_log()
    model = fit_click_model(design, ("x1", "x2"), log)
    assert model is not None
    np.testing.assert_allclose(model.coef, BETA, rtol=0.12)
    assert model.intercept == pytest.approx(INTERCEPT, abs=0.15)
    flat = PositionBias(theta=np.ones(len(THETA)), exponent=0.0, randomised_slots=0)
    naive = fit_click_model(design, ("x1", "x2"), log, bias=flat)
    assert naive is not None
    assert naive.intercept < INTERCEPT - 0.2  # average examination folded into appeal
    p = model.click_probability(design[:8], log.position[:8])
    assert np.all((p > 0) & (p < 1))


def test_without_randomised_tops_the_position_bias_is_fitted_with_the_appeal() -> None:
    """Exploration slots only at the end (no randomised position 0): the bias and the planted
    weights are still recovered, because the features explain the ranking."""
    design, log = planted_log(randomised_share=0.0)
    last = log.position == len(THETA) - 1
    log = replace(log, randomised=last)  # the last slot of every message counts as explored
    assert estimate_position_bias(log) is None
    bias = joint_position_bias(design, log)
    assert bias is not None and bias.theta[0] == 1.0
    np.testing.assert_allclose(bias.theta, THETA, atol=0.06)
    model = fit_click_model(design, ("x1", "x2"), log)
    assert model is not None
    np.testing.assert_allclose(model.coef, BETA, rtol=0.12)
    np.testing.assert_allclose(model.bias.theta, bias.theta)


def test_shown_before_counts_earlier_exposures_of_the_pair_only() -> None:
    """Known answer: a slot never counts itself; other subscribers and items do not count."""
    log = ExposureLog(
        user_idx=np.array([0, 0, 0, 1, 0]),
        item_idx=np.array([3, 3, 3, 3, 4]),
        position=np.zeros(5, dtype=np.int64),
        section=np.full(5, "top"),
        clicked=np.zeros(5, dtype=bool),
        randomised=np.zeros(5, dtype=bool),
        sent_at=np.array([100.5, 700.25, 1300.75, 100.5, 100.5]),
    )
    shown = ShownBefore.build(log, n_items=5)
    at_own_times = shown.count(log.user_idx, log.item_idx, log.sent_at)
    assert at_own_times.tolist() == [0, 1, 2, 0, 0]
    later = shown.count(np.array([0, 1, 2]), np.array([3, 3, 3]), np.full(3, 5000.0))
    assert later.tolist() == [3, 1, 0]
    assert ShownBefore.build(None, 5).count(np.array([0]), np.array([3]), np.array([9e9])) == 0


def test_a_log_is_cut_into_sends_by_run_or_by_a_gap_in_time() -> None:
    """Each send's slots are scored by their own hybrid: sends by id, else by a day's gap."""
    times = np.array([5.0, 1.0, 2 * DAY, 1.5, 2 * DAY + 60, 9 * DAY])
    n = len(times)
    log = ExposureLog(
        user_idx=np.zeros(n, dtype=np.int64),
        item_idx=np.zeros(n, dtype=np.int64),
        position=np.zeros(n, dtype=np.int64),
        section=np.full(n, "top"),
        clicked=np.zeros(n, dtype=bool),
        randomised=np.zeros(n, dtype=bool),
        sent_at=times,
    )
    assert [g.tolist() for g in _sends(log)] == [[1, 3, 0], [2, 4], [5]]
    by_run = replace(log, send=np.array([7, 7, 8, 7, 9, 9]))
    assert [sorted(g.tolist()) for g in _sends(by_run)] == [[0, 1, 3], [2], [4, 5]]


def test_thin_feedback_falls_back() -> None:
    """Too few clicks, or no randomised slots: no model (the caller keeps the hybrid)."""
    design, log = planted_log(messages=300)
    assert fit_click_model(design, ("x1", "x2"), log, min_clicks=10_000) is None
    _, ranked_only = planted_log(messages=3000, randomised_share=0.0)
    assert estimate_position_bias(ranked_only) is None
    assert fit_click_model(design[: len(ranked_only.user_idx)], ("x1", "x2"), ranked_only) is None
    with pytest.raises(ValueError, match=r"ExposureLog\.clicked"):
        ExposureLog(*(np.zeros(3),) * 4, np.zeros(2), np.zeros(3), np.zeros(3))


def fresh_world():
    """Block world where odd items were published a day before the emails, even ones a year."""
    data, catalog = block_world()
    send = NOW + 7 * DAY
    published = np.where(np.arange(21) % 2 == 1, send - DAY, NOW - 365 * DAY)
    catalog = ItemCatalog(catalog.titles, catalog.texts, catalog.topics, published_at=published)
    return data, catalog, send


def fresh_click_log(*, seed: int = 0, messages: int = 4000) -> ExposureLog:
    """Every subscriber gets 4 random items per message; fresh (odd) items are liked 5x more."""
    rng = np.random.default_rng(seed)
    _, _, send = fresh_world()
    slots = 4
    users = np.repeat(rng.integers(0, 20, messages), slots)
    items = rng.integers(0, 21, messages * slots)
    position = np.tile(np.arange(slots), messages)
    appeal = np.where(items % 2 == 1, 0.40, 0.08)
    theta = np.array([1.0, 0.6, 0.45, 0.35])[position]
    return ExposureLog(
        user_idx=users,
        item_idx=items,
        position=position,
        section=np.where(position < 2, "top", "more"),
        clicked=rng.random(len(items)) < theta * appeal,
        randomised=np.ones(len(items), dtype=bool),
        sent_at=send + rng.uniform(0, 1, len(items)) * DAY,
    )


def test_click_ranker_learns_that_readers_click_fresh_items() -> None:
    """A log where fresh items are clicked more teaches a negative item-age weight and fresh
    items first; with no log the ranker returns exactly the hybrid's ranking."""
    data, catalog, send = fresh_world()
    config = HybridConfig(age_half_life_days=None)
    ranker = ClickRanker(config).fit(data, catalog, now=send, log=fresh_click_log())
    assert ranker.learned and ranker.model is not None
    weights = ranker.model.weights()
    assert weights["item_age"] < 0
    assert set(weights) == set(CLICK_FEATURES) | {"section=more", "section=top"}
    np.testing.assert_allclose(ranker.model.bias.theta, [1.0, 0.6, 0.45, 0.35], atol=0.08)
    exclude = consumed_matrix(data)
    items, scores = ranker.recommend(np.arange(20), 4, exclude=exclude)
    assert np.mean(items % 2 == 1) > 0.9
    for user, row in enumerate(items):
        assert not set(row.tolist()) & set(exclude[user].indices.tolist())
        assert np.all(np.diff(scores[user]) <= 0)
    plain = ClickRanker(config).fit(data, catalog, now=send)
    assert not plain.learned
    hybrid_items, _ = plain.hybrid.recommend(np.arange(20), 4, exclude=exclude)
    assert np.array_equal(plain.recommend(np.arange(20), 4, exclude=exclude)[0], hybrid_items)
    rescored = plain.rescore(np.arange(20), hybrid_items)
    assert np.all(np.diff(rescored, axis=1) <= 1e-5)  # the hybrid's own order


def test_logged_slots_are_scored_by_a_hybrid_that_has_not_seen_them() -> None:
    """History after the first send (e.g. the click itself) never feeds the logged features."""
    data, catalog, send = fresh_world()
    ranker = ClickRanker(HybridConfig(age_half_life_days=None))
    ranker.fit(data, catalog, now=send, log=fresh_click_log(messages=1500))
    end = ranker.context.before(np.array([0]), np.array([send]))
    assert end[0] - ranker.context.starts[0] == 6  # all six reads of user 0 precede the send
