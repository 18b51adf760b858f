"""Freshness: interest half-life estimated from a log, age decay, fresh items by recent reads."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from recommend_world import NOW, block_world

from newsletter.recommend.base import DAY, InteractionData, ItemCatalog
from newsletter.recommend.freshness import FreshItems, age_decay, estimate_half_life
from newsletter.recommend.hybrid import HybridConfig, HybridRecommender
from newsletter.recommend.weighting import consumed_matrix


def news_log(half_life_days: float, *, seed: int = 0, items: int = 300) -> tuple:
    """Items published over 60 days; each item's reads arrive at a rate halving every h days."""
    rng = np.random.default_rng(seed)
    published = NOW - rng.uniform(0, 60, items) * DAY
    rate = np.log(2) / half_life_days
    item_idx, times = [], []
    for i, pub in enumerate(published):
        window = (NOW - pub) / DAY
        ages = rng.exponential(1 / rate, rng.poisson(40))
        ages = ages[ages < window]  # reads not yet happened by now are not in the log
        item_idx += [i] * len(ages)
        times += list(pub + ages * DAY)
    n = len(item_idx)
    data = InteractionData(
        n_users=50,
        n_items=items,
        user_idx=rng.integers(0, 50, n),
        item_idx=np.array(item_idx),
        kind=np.full(n, "read"),
        timestamp=np.array(times),
    )
    catalog = ItemCatalog(
        titles=[f"item {i}" for i in range(items)],
        texts=[""] * items,
        topics=[[] for _ in range(items)],
        published_at=published,
    )
    return data, catalog


@pytest.mark.parametrize("half_life", [0.5, 3.0, 10.0])
def test_half_life_of_interest_is_recovered_from_a_censored_log(half_life: float) -> None:
    """A planted half-life is recovered within 10% although young items are still being read."""
    data, catalog = news_log(half_life)
    assert estimate_half_life(data, catalog, now=NOW) == pytest.approx(half_life, rel=0.10)


def test_interest_that_does_not_fade_gives_no_decay() -> None:
    """Reads spread evenly over each item's life (films, not news): no finite half-life."""
    rng = np.random.default_rng(1)
    published = NOW - rng.uniform(100, 3000, 200) * DAY
    items = np.repeat(np.arange(200), 30)
    times = published[items] + rng.uniform(0, 1, len(items)) * (NOW - published[items])
    data = InteractionData(
        n_users=10,
        n_items=200,
        user_idx=rng.integers(0, 10, len(items)),
        item_idx=items,
        kind=np.full(len(items), "rating"),
        timestamp=times,
    )
    catalog = ItemCatalog(["x"] * 200, [""] * 200, [[]] * 200, published_at=published)
    assert estimate_half_life(data, catalog, now=NOW) > 20 * 365


def test_too_few_events_give_no_decay() -> None:
    """Below ``min_events`` there is nothing to estimate from."""
    data, catalog = news_log(3.0, items=3)
    assert estimate_half_life(data, catalog, now=NOW, min_events=10_000) == float("inf")


@settings(max_examples=25, deadline=None)
@given(st.floats(0.1, 1000.0), st.floats(0.0, 5000.0))
def test_age_decay_halves_every_half_life(half_life: float, age: float) -> None:
    """``0.5 ** (age / h)``: 1 when new, 0.5 at one half-life; future items count as new."""
    published = np.array([NOW, NOW + DAY, NOW - half_life * DAY, NOW - age * DAY])
    catalog = ItemCatalog(["a", "b", "c", "d"], [""] * 4, [[]] * 4, published_at=published)
    decay = age_decay(catalog, now=NOW, half_life_days=half_life)
    assert decay[0] == 1.0 and decay[1] == 1.0
    assert decay[2] == pytest.approx(0.5, rel=1e-5)
    assert decay[3] == pytest.approx(0.5 ** (age / half_life), rel=1e-4, abs=1e-30)
    assert np.all(age_decay(catalog, now=NOW, half_life_days=None) == 1.0)


def test_fresh_items_follow_the_latest_reads() -> None:
    """A reader who moved from science to sports gets the new sports story first."""
    data, catalog = block_world()
    titles = [*catalog.titles, "Brand new sports story"]
    texts = [*catalog.texts, "football match goal league tennis"]
    topics = [*catalog.topics, ["sports"]]
    published = np.r_[catalog.published_at, NOW - 2 * DAY]
    catalog = ItemCatalog(titles, texts, topics, published_at=published)
    # user 0 read science long ago, then three sports items this week
    switch = InteractionData(
        n_users=data.n_users,
        n_items=22,
        user_idx=np.r_[data.user_idx, [0, 0, 0]],
        item_idx=np.r_[data.item_idx, [10, 11, 12]],
        kind=np.r_[data.kind, ["read"] * 3],
        timestamp=np.r_[data.timestamp, [NOW - 3 * DAY, NOW - 2 * DAY, NOW - DAY]],
        user_topics=data.user_topics,
    )
    model = FreshItems(days=7, recent=3).fit(switch, catalog, now=NOW)
    scores = model.score(np.array([0, 1, 20]))
    assert np.all(np.isneginf(scores[:, :20]))  # only items of the last 7 days
    assert scores[0, 21] > scores[0, 20]  # user 0: latest reads are sports
    assert scores[1, 20] > scores[1, 21]  # user 1: science reader
    assert scores[2, 20] > scores[2, 21]  # user 20: no reads, declared science


def test_age_decay_moves_old_items_down_the_collaborative_ranking() -> None:
    """With a 7-day half-life, unread old science items fall below unread new ones."""
    data, catalog = block_world()
    published = np.where(np.arange(21) % 2 == 0, NOW - 300 * DAY, NOW - 2 * DAY)
    catalog = ItemCatalog(catalog.titles, catalog.texts, catalog.topics, published_at=published)
    exclude = consumed_matrix(data)
    config = HybridConfig(blend={"ease": 1.0}, exclude_consumed=True)
    plain = HybridRecommender(replace_age(config, None)).fit(data, catalog, now=NOW)
    aged = HybridRecommender(replace_age(config, 7.0)).fit(data, catalog, now=NOW)
    assert plain.age_decay is None and aged.age_half_life == 7.0
    users = np.arange(10)
    old = np.arange(21) % 2 == 0
    top_plain, _ = plain.recommend(users, 1, exclude=exclude)
    top_aged, _ = aged.recommend(users, 1, exclude=exclude)
    unread_new = [set(range(1, 10, 2)) - set(exclude[u].indices) for u in users]
    for u in users:
        if unread_new[u]:
            assert not old[top_aged[u, 0]]
    assert old[top_aged[:, 0]].sum() < old[top_plain[:, 0]].sum()


def replace_age(config: HybridConfig, half_life: float | None) -> HybridConfig:
    """Return ``config`` with another item-age half-life."""
    from dataclasses import replace

    return replace(config, age_half_life_days=half_life)


def test_every_personal_source_is_decayed_by_item_age() -> None:
    """Content and fresh-item matches fade with age like collaborative ones (0.5 ** (age/h))."""
    data, catalog = block_world()
    age_days = np.where(np.arange(21) % 2 == 0, 9.0, 1.0)
    published = NOW - age_days * DAY
    catalog = ItemCatalog(catalog.titles, catalog.texts, catalog.topics, published_at=published)
    config = HybridConfig(blend={"ease": 1.0, "content": 0.5, "fresh": 0.5}, fresh_days=14)
    plain = HybridRecommender(replace_age(config, None)).fit(data, catalog, now=NOW)
    aged = HybridRecommender(replace_age(config, 3.0)).fit(data, catalog, now=NOW)
    users = np.arange(12)
    before, after = plain.features(users), aged.features(users)
    decay = 0.5 ** (age_days / 3.0)
    for name in ("ease", "content", "fresh"):
        assert np.abs(before[name]).max() > 0
        np.testing.assert_allclose(after[name], before[name] * decay[None, :], atol=1e-6)
    np.testing.assert_allclose(
        aged.blend(users).total, plain.blend(users).total * decay[None, :], atol=1e-5
    )
