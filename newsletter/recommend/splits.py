"""Offline evaluation protocols as pure functions on InteractionData, plus ranking metrics.

The same splits serve the test protocol (``evaluate.py``) and hyper-parameter validation
(``tune.py`` repeats them *inside* the training input, so the test set is never looked at).

* :func:`temporal_split` -- per test user (>= ``min_positives`` positives), the last
  ``fraction`` of positives by (timestamp, item) is the test set; their training input is what
  happened strictly before the first test timestamp; other users keep everything.
* :func:`cold_item_split` -- every event on the cold items is held out; evaluated users have a
  positive on a cold item and ``min_train`` training events; only cold items are ranked.
* :func:`aging_split` -- for catalogues that age (news): train on everything before ``cut``;
  the test set is, per user, the items published in ``[cut, cut + horizon)`` that the user read
  in that window; every item published before ``cut + horizon`` may be ranked, so a model
  that keeps sending last month's articles scores low.

Each split records the rule it applied (``Split.cut``: per user, the time from which nothing is
known; ``Split.hidden``: items whose behaviour is held out) so that time-stamped side data --
MovieLens tags are written by users -- is cut by the same rule (:class:`SideEvents`). Tags on
an item are behaviour on it, not metadata: a model that reads the tags a test user wrote after
their cut, or the tags on a held-out cold item, sees the answer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from newsletter.recommend.base import Array, InteractionData


@dataclass(frozen=True)
class Split:
    """Training input, held-out positives per evaluated user, and what may be ranked.

    ``cut[u]`` is the time from which user u's behaviour is held out (``inf``: none) and
    ``hidden`` marks items all of whose behaviour is held out; ``None`` means no such rule.
    """

    train: InteractionData
    users: Array
    test: sp.csr_matrix
    candidates: Array
    exclude: sp.csr_matrix
    cut: Array | None = None
    hidden: Array | None = None

    def user_cut(self) -> Array:
        """Return the per-user cut, ``inf`` for every user when the split cuts no time."""
        if self.cut is None:
            return np.full(self.train.n_users, np.inf)
        return self.cut

    def hidden_items(self) -> Array:
        """Return the held-out item mask (all False when no item is held out)."""
        if self.hidden is None:
            return np.zeros(self.train.n_items, dtype=bool)
        return self.hidden


@dataclass(frozen=True)
class SideEvents:
    """Time-stamped side data written by users about items (MovieLens tags), cut like behaviour.

    ``user_idx`` is -1 for writers who have no behaviour events (never cut by time).
    """

    user_idx: Array
    item_idx: Array
    timestamp: Array
    text: Array

    def visible(self, *, cut: Array, hidden: Array) -> Array:
        """Return which entries a model may see: written before the writer's cut, not hidden."""
        writer_cut = np.where(self.user_idx >= 0, cut[np.maximum(self.user_idx, 0)], np.inf)
        return (np.asarray(self.timestamp) < writer_cut) & ~hidden[self.item_idx]

    def text_per_item(self, n_items: int, mask: Array) -> list[str]:
        """Return, per item, the visible entries joined by spaces in their stored order."""
        out: list[list[str]] = [[] for _ in range(n_items)]
        for item, text in zip(self.item_idx[mask], self.text[mask], strict=True):
            out[int(item)].append(str(text))
        return [" ".join(parts) for parts in out]


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
    return Split(train=train, users=users, test=test, candidates=candidates, exclude=seen, cut=cut)


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
    return Split(
        train=train,
        users=users,
        test=test,
        candidates=cold.copy(),
        exclude=_seen(train),
        hidden=np.asarray(cold, dtype=bool).copy(),
    )


def aging_split(
    data: InteractionData,
    published_at: Array,
    *,
    cut: float,
    horizon: float,
    min_train: int = 1,
) -> Split:
    """Train on the events before ``cut``; test on next-window reads of next-window items.

    Evaluated users have ``min_train`` training events and a human event in
    ``[cut, cut + horizon)`` on an item published in that window (the ``machine`` flag, when
    present, leaves machine events out of the test set).
    """
    times = np.asarray(data.timestamp, dtype=np.float64)
    published = np.asarray(published_at, dtype=np.float64)
    end = cut + horizon
    new = (published >= cut) & (published < end)
    human = np.ones(len(times), dtype=bool) if data.machine is None else ~np.asarray(data.machine)
    train = data.subset(times < cut)
    held = data.subset(human & (times >= cut) & (times < end) & new[data.item_idx])
    test = _seen(held)
    n_train = np.bincount(train.user_idx, minlength=data.n_users)
    users = np.flatnonzero((np.diff(test.indptr) > 0) & (n_train >= min_train))
    return Split(
        train=train,
        users=users,
        test=test,
        candidates=published < end,
        exclude=_seen(train),
        cut=np.full(data.n_users, float(cut)),
    )


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
