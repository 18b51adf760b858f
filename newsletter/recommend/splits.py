"""Offline evaluation protocols as pure functions on InteractionData, plus ranking metrics.

The same splits serve the test protocol (``evaluate.py``) and hyper-parameter validation
(``tune.py`` repeats them *inside* the training input, so the test set is never looked at).

* :func:`temporal_split` -- per test user (>= ``min_positives`` positives), the last
  ``fraction`` of positives by (timestamp, item) is the test set; their training input is what
  happened strictly before the first test timestamp; other users keep everything.
* :func:`cold_item_split` -- every event on the cold items is held out; evaluated users have a
  positive on a cold item and ``min_train`` training events; only cold items are ranked.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from newsletter.recommend.base import Array, InteractionData


@dataclass(frozen=True)
class Split:
    """Training input, held-out positives per evaluated user, and what may be ranked."""

    train: InteractionData
    users: Array
    test: sp.csr_matrix
    candidates: Array
    exclude: sp.csr_matrix


def positives_mask(data: InteractionData, *, positive_min: float) -> Array:
    """Return which events are positives (value >= threshold; events without value are)."""
    if data.value is None:
        return np.ones(len(data.user_idx), dtype=bool)
    return np.asarray(data.value, dtype=np.float64) >= positive_min


def _seen(data: InteractionData) -> sp.csr_matrix:
    """Return a 0/1 user x item matrix of the events in ``data``."""
    ones = np.ones(len(data.user_idx), dtype=np.float32)
    seen = sp.csr_matrix((ones, (data.user_idx, data.item_idx)), shape=(data.n_users, data.n_items))
    seen.sum_duplicates()
    seen.data[:] = 1.0
    return seen


def temporal_split(
    data: InteractionData,
    *,
    positive_min: float = 4.0,
    min_positives: int = 5,
    fraction: float = 0.2,
) -> Split:
    """Hold out the last ``fraction`` of each active user's positives (see module doc)."""
    pos = np.flatnonzero(positives_mask(data, positive_min=positive_min))
    order = np.lexsort((data.item_idx[pos], data.timestamp[pos], data.user_idx[pos]))
    pos = pos[order]
    users_sorted = data.user_idx[pos]
    bounds = np.flatnonzero(np.diff(users_sorted)) + 1
    starts = np.r_[0, bounds]
    ends = np.r_[bounds, len(pos)]
    cut = np.full(data.n_users, np.inf)
    test_rows: list[Array] = []
    for s, e in zip(starts, ends, strict=True):
        count = e - s
        if count < min_positives:
            continue
        n_test = max(1, round(fraction * count))
        held = pos[e - n_test : e]
        cut[data.user_idx[held[0]]] = data.timestamp[held].min()
        test_rows.append(held)
    held_all = np.concatenate(test_rows) if test_rows else np.zeros(0, dtype=np.int64)
    keep = data.timestamp < cut[data.user_idx]
    train = data.subset(keep)
    users = np.flatnonzero(np.isfinite(cut))
    test = _seen(data.subset(np.isin(np.arange(len(data.user_idx)), held_all)))
    seen = _seen(train)
    candidates = np.asarray(seen.sum(axis=0)).ravel() > 0
    return Split(train=train, users=users, test=test, candidates=candidates, exclude=seen)


def cold_item_split(
    data: InteractionData,
    cold: Array,
    *,
    positive_min: float = 4.0,
    min_train: int = 5,
) -> Split:
    """Hold out every event on the ``cold`` items (boolean mask over items)."""
    on_cold = cold[data.item_idx]
    train = data.subset(~on_cold)
    held = data.subset(on_cold & positives_mask(data, positive_min=positive_min))
    test = _seen(held)
    n_train = np.bincount(train.user_idx, minlength=data.n_users)
    has_test = np.diff(test.indptr) > 0
    users = np.flatnonzero(has_test & (n_train >= min_train))
    return Split(train=train, users=users, test=test, candidates=cold.copy(), exclude=_seen(train))


def ranking_metrics(
    recs: Array, test: sp.csr_matrix, users: Array, *, k: int = 10
) -> dict[str, float]:
    """Mean NDCG@k, Recall@k and MAP@k with binary relevance (ideal over min(k, |test|))."""
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    ndcg, recall, ap = [], [], []
    for row, user in zip(recs[:, :k], users, strict=True):
        relevant = test.indices[test.indptr[user] : test.indptr[user + 1]]
        hits = np.isin(row, relevant) & (row >= 0)
        denom = min(k, len(relevant))
        ideal = discounts[:denom].sum()
        ndcg.append(float((discounts[: len(hits)] * hits).sum() / ideal))
        recall.append(float(hits.sum() / denom))
        precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
        ap.append(float((precision * hits).sum() / denom))
    return {
        "ndcg@10": float(np.mean(ndcg)),
        "recall@10": float(np.mean(recall)),
        "map@10": float(np.mean(ap)),
    }
