"""Sequential item-kNN: transitions in reading order, recency-weighted queries, chunking."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import newsletter.recommend.sequential as sequential
from newsletter.recommend.base import InteractionData, ItemCatalog
from newsletter.recommend.sequential import SequentialKNN

NOW = 1_000_000.0


def reads(rows: list[tuple[int, int, float]], n_users: int, n_items: int) -> InteractionData:
    """InteractionData from (user, item, time) read events."""
    u, i, t = (np.array(x) for x in zip(*rows, strict=True))
    return InteractionData(
        n_users=n_users,
        n_items=n_items,
        user_idx=u.astype(np.int64),
        item_idx=i.astype(np.int64),
        kind=np.full(len(u), "read"),
        timestamp=t.astype(float),
    )


def catalog(n: int) -> ItemCatalog:
    """A catalogue of n untitled items (the model ignores it)."""
    return ItemCatalog(
        titles=[f"t{i}" for i in range(n)],
        texts=[""] * n,
        topics=[[] for _ in range(n)],
        published_at=np.zeros(n),
    )


def test_next_read_follows_the_latest_read_not_the_oldest() -> None:
    """Readers go 0 -> 1 or 2 -> 3; a reader whose latest read is 2 gets 3 before 1."""
    rows = []
    for u in range(6):
        rows += [(u, 0, 10.0 * u), (u, 1, 10.0 * u + 1)]
        rows += [(7 + u, 2, 500.0 + 10 * u), (7 + u, 3, 500.0 + 10 * u + 1)]
    rows += [(6, 0, 1.0), (6, 2, 900.0)]
    data = reads(rows, 13, 4)
    model = SequentialKNN(window=1, last=2, decay=0.5).fit(data, catalog(4), now=NOW)
    scores = model.score(np.array([6]))[0]
    assert scores[3] > scores[1] > 0
    assert scores[3] == pytest.approx(2 * scores[1])  # latest read weighs 1, the one before 0.5
    items, _ = model.recommend(np.array([6]), 2, exclude=model.query)
    assert items[0].tolist() == [3, 1]


def test_window_bounds_which_pairs_count() -> None:
    """With window 1 only adjacent reads are linked; with window 2 also one apart."""
    data = reads([(0, 0, 1.0), (0, 1, 2.0), (0, 2, 3.0)], 1, 3)
    near = SequentialKNN(window=1, shrink=0.0).fit(data, catalog(3), now=NOW).weights.toarray()
    assert near[0, 1] > 0 and near[1, 2] > 0 and near[0, 2] == 0
    wide = SequentialKNN(window=2, decay=0.5, shrink=0.0).fit(data, catalog(3), now=NOW)
    w = wide.weights.toarray()
    assert w[0, 2] == pytest.approx(0.5 * w[0, 1])  # decay ** (distance - 1), same degrees


def test_low_ratings_do_not_count_as_reads() -> None:
    """Ratings under ``min_value`` are left out of the transitions."""
    data = InteractionData(
        n_users=1,
        n_items=3,
        user_idx=np.zeros(3, dtype=np.int64),
        item_idx=np.arange(3),
        kind=np.full(3, "rating"),
        timestamp=np.array([1.0, 2.0, 3.0]),
        value=np.array([5.0, 1.0, 5.0]),
    )
    w = SequentialKNN(window=1, shrink=0.0).fit(data, catalog(3), now=NOW).weights.toarray()
    assert w[0, 2] > 0 and w[0, 1] == 0 and w[1, 2] == 0


@settings(max_examples=30, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 4), st.integers(0, 7), st.integers(0, 50)),
        min_size=1,
        max_size=60,
    ),
    st.integers(1, 4),
)
def test_chunked_pairs_equal_one_pass(rows: list[tuple[int, int, int]], window: int) -> None:
    """Accumulating pairs in small chunks gives exactly the one-pass transition matrix."""
    data = reads([(u, i, float(t)) for u, i, t in rows], 5, 8)
    whole = SequentialKNN(window=window, k=8).fit(data, catalog(8), now=NOW).weights
    saved = sequential.PAIR_CHUNK
    try:
        sequential.PAIR_CHUNK = window  # one first-event per chunk
        chunked = SequentialKNN(window=window, k=8).fit(data, catalog(8), now=NOW).weights
    finally:
        sequential.PAIR_CHUNK = saved
    np.testing.assert_allclose(chunked.toarray(), whole.toarray(), rtol=1e-5)
