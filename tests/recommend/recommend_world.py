"""Tiny synthetic worlds with known answers for the recommender tests."""

from __future__ import annotations

import numpy as np
import pytest

from newsletter.recommend.base import DAY, InteractionData, ItemCatalog

NOW = 1_700_000_000.0
SCIENCE = [
    "physics lab quantum particles",
    "telescope galaxy stars astronomy",
    "chemistry molecules lab",
]
SPORTS = ["football match goal league", "tennis serve match tournament", "marathon running race"]


def block_world(*, seed: int = 0) -> tuple[InteractionData, ItemCatalog]:
    """20 users x 21 items: users 0-9 read science items 0-9, users 10-19 sports items 10-19.

    Each user read 6 of the 10 items of their block; item 20 is a brand-new science item
    nobody has read (only content can find it). Users 20 and 21 have no history; user 20
    declared the topic "science", user 21 declared nothing.
    """
    rng = np.random.default_rng(seed)
    users, items, kinds, times = [], [], [], []
    for u in range(20):
        block = 0 if u < 10 else 10
        for i in rng.choice(10, size=6, replace=False):
            users.append(u)
            items.append(block + int(i))
            kinds.append(str(rng.choice(["view", "read", "click", "purchase"])))
            times.append(NOW - float(rng.uniform(1, 60)) * DAY)
    titles = [f"Science story {i}" for i in range(10)] + [f"Sports story {i}" for i in range(10)]
    titles.append("Brand new science story")
    texts = [SCIENCE[i % 3] for i in range(10)] + [SPORTS[i % 3] for i in range(10)]
    texts.append("quantum physics lab telescope chemistry")
    topics = [["science"]] * 10 + [["sports"]] * 10 + [["science"]]
    published = np.array([NOW - 90 * DAY] * 20 + [NOW - 1 * DAY])
    data = InteractionData(
        n_users=22,
        n_items=21,
        user_idx=np.array(users),
        item_idx=np.array(items),
        kind=np.array(kinds),
        timestamp=np.array(times),
        user_topics=[[] for _ in range(20)] + [["science"], []],
    )
    catalog = ItemCatalog(titles=titles, texts=texts, topics=topics, published_at=published)
    return data, catalog


@pytest.fixture
def world() -> tuple[InteractionData, ItemCatalog]:
    """The block world (see :func:`block_world`); import this fixture into a test module."""
    return block_world()


CLUSTER_WORDS = [
    "garden soil seeds",
    "kitchen knife pan",
    "running shoes track",
    "camera lens film",
]


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
        texts=[CLUSTER_WORDS[g] for g in item_group],
        topics=[[f"group{g}"] for g in item_group],
        published_at=np.full(n_items, NOW - 120 * DAY),
    )
    return data, catalog
