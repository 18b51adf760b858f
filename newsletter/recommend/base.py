"""Data hand-off, result types and the Recommender protocol shared by every generator.

This is the seam between ``store/`` and ``recommend/``. The store maps subscriber and item ids
to integer indices (``0..n_users-1`` and ``0..n_items-1``) and hands over two frozen values:

* :class:`InteractionData` -- one row per behaviour event (user index, item index, kind,
  timestamp in seconds, optional value such as a rating, optional machine flag), plus the
  topics each subscriber declared.
* :class:`ItemCatalog` -- per item: title, text (summary), topics, published_at seconds,
  active mask, optional expiry and attributes (used by business rules such as
  ``{"in_stock": True}``), optional sentence embeddings (``embeddings.py``).

Every generator follows :class:`Recommender`, batch-first::

    model = ItemKNN().fit(data, catalog, now=now_seconds)
    items, scores = model.recommend(users, 20, exclude=consumed, candidates=None)

``items`` and ``scores`` have shape ``(len(users), n)``; rows are sorted by descending score;
slots a model cannot fill hold item ``-1`` and score ``-inf``. ``exclude`` is a sparse matrix
indexed by *user index* (shape ``(n_users, n_items)``, nonzero = do not return); ``candidates``
is an optional boolean mask over items (only those may be returned). Nothing here reads the
clock, a database or a file: ``now`` is always a parameter.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, Self, runtime_checkable

import numpy as np
import scipy.sparse as sp

Array = np.ndarray
DAY = 86400.0
BATCH = 1024


@dataclass(frozen=True)
class InteractionData:
    """Behaviour events as integer-indexed arrays: the hand-off from store/ to recommend/."""

    n_users: int
    n_items: int
    user_idx: Array
    item_idx: Array
    kind: Array
    timestamp: Array
    value: Array | None = None
    machine: Array | None = None
    user_topics: Sequence[Sequence[str]] | None = None

    def __post_init__(self) -> None:
        """Validate shapes and index ranges so errors name the offending field."""
        n = len(self.user_idx)
        for name in ("item_idx", "kind", "timestamp"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"InteractionData.{name} has length != len(user_idx) ({n})")
        for name in ("value", "machine"):
            arr = getattr(self, name)
            if arr is not None and len(arr) != n:
                raise ValueError(f"InteractionData.{name} has length != len(user_idx) ({n})")
        if n and (self.user_idx.min() < 0 or self.user_idx.max() >= self.n_users):
            raise ValueError("InteractionData.user_idx out of range 0..n_users-1")
        if n and (self.item_idx.min() < 0 or self.item_idx.max() >= self.n_items):
            raise ValueError("InteractionData.item_idx out of range 0..n_items-1")

    def subset(self, mask: Array) -> InteractionData:
        """Return the events selected by a boolean mask (same index spaces)."""
        return InteractionData(
            n_users=self.n_users,
            n_items=self.n_items,
            user_idx=self.user_idx[mask],
            item_idx=self.item_idx[mask],
            kind=self.kind[mask],
            timestamp=self.timestamp[mask],
            value=None if self.value is None else self.value[mask],
            machine=None if self.machine is None else self.machine[mask],
            user_topics=self.user_topics,
        )


@dataclass(frozen=True)
class ItemCatalog:
    """What is known about each item at publish time (no behaviour)."""

    titles: Sequence[str]
    texts: Sequence[str]
    topics: Sequence[Sequence[str]]
    published_at: Array
    active: Array | None = None
    expires_at: Array | None = None
    attributes: Sequence[Mapping[str, Any]] | None = None
    embeddings: Array | None = None

    @property
    def n_items(self) -> int:
        """Number of items in the catalogue."""
        return len(self.titles)


@dataclass(frozen=True)
class Reason:
    """Why one item was recommended: a kind, an anchor (item or topic) and a sentence."""

    kind: str
    sentence: str
    anchor_item: int | None = None
    anchor_topic: str | None = None


@dataclass(frozen=True)
class Recommendations:
    """Ranked slots for a batch of users, with source, propensity and reason per slot."""

    users: Array
    items: Array
    scores: Array
    sources: Array
    propensities: Array
    reasons: list[list[Reason]] = field(default_factory=list)


@dataclass(frozen=True)
class Feedback:
    """Logged slots: which (user, item) pairs were shown and whether each was clicked."""

    user_idx: Array
    item_idx: Array
    clicked: Array


@runtime_checkable
class Recommender(Protocol):
    """Batch-first candidate generator: fit on interactions, return top-n indices and scores."""

    def fit(self, data: InteractionData, catalog: ItemCatalog, *, now: float) -> Self:
        """Learn from interactions and the catalogue as of time ``now`` (seconds)."""
        ...

    def recommend(
        self,
        users: Array,
        n: int,
        *,
        exclude: sp.csr_matrix | None = None,
        candidates: Array | None = None,
    ) -> tuple[Array, Array]:
        """Return ``(items, scores)`` of shape ``(len(users), n)``, best first."""
        ...


def as_seconds(now: float | datetime) -> float:
    """Turn ``now`` (seconds or an aware datetime) into float seconds since the epoch."""
    if isinstance(now, datetime):
        return now.timestamp()
    return float(now)


def to_dense(matrix: Any) -> Array:
    """Return a dense ndarray from a dense or scipy sparse matrix."""
    if isinstance(matrix, np.ndarray):
        return matrix
    if sp.issparse(matrix):
        return np.asarray(matrix.toarray())  # type: ignore[attr-defined]
    return np.asarray(matrix)


def empty_csr(rows: int, cols: int) -> sp.csr_matrix:
    """Return an all-zero float32 CSR matrix of the given shape."""
    none = np.zeros(0, dtype=np.int64)
    return sp.csr_matrix((np.zeros(0, dtype=np.float32), (none, none)), shape=(rows, cols))


def sparse_row_scale(matrix: sp.csr_matrix) -> Array:
    """Return ``1 / max`` of each CSR row's stored values (0 where it is not positive)."""
    top = np.zeros(matrix.shape[0], dtype=np.float64)
    lengths = np.diff(matrix.indptr)
    rows = np.flatnonzero(lengths > 0)
    if len(rows):
        top[rows] = np.maximum.reduceat(matrix.data, matrix.indptr[rows])
    return np.where(top > 0, 1.0 / np.where(top > 0, top, 1.0), 0.0).astype(np.float32)


def scale_rows(matrix: sp.csr_matrix, factors: Array) -> sp.csr_matrix:
    """Return a copy of a CSR matrix with row r multiplied by ``factors[r]``."""
    out = sp.csr_matrix(matrix, dtype=np.float32, copy=True)
    out.data *= np.repeat(np.asarray(factors, dtype=np.float32), np.diff(out.indptr))
    return out


def best_anchors(
    history: sp.csr_matrix, items: Array, pair_values: Callable[[Array, Array], Array]
) -> Array:
    """Return, per (row, slot), the history item j maximising ``w_j * pair_values(j, item)``.

    Vectorised over a whole batch: every (history entry, slot) pair is scored at once and the
    best per slot is found by one sort; ``-1`` where no pair scores above zero.
    """
    rows, n = items.shape
    counts = np.diff(history.indptr)
    entry_row = np.repeat(np.arange(rows), counts)
    j = np.repeat(history.indices, n)
    r = np.repeat(entry_row, n)
    c = np.tile(np.arange(n), len(history.indices))
    i = items[r, c]
    ok = i >= 0
    j, r, c, i = j[ok], r[ok], c[ok], i[ok]
    values = np.repeat(history.data, n)[ok] * pair_values(j, i)
    out = np.full(items.shape, -1, dtype=np.int64)
    if len(values) == 0:
        return out
    group = r * n + c
    order = np.lexsort((-values, group))
    first = order[np.r_[True, np.diff(group[order]) != 0]]
    good = first[values[first] > 0]
    out[r[good], c[good]] = j[good]
    return out


def tie_break(n_items: int, scale: float = 1e-9) -> Array:
    """Return tiny fixed pseudo-random offsets (< 1e-9) so exact ties never favour low indices.

    ``scale`` bounds the offset (use ~1e-6 for float32 scores). Without it, items with equal
    scores (e.g. no interactions at all) would come out in index order, which in real
    catalogues correlates with age and would flatter a model by accident.
    """
    idx = np.arange(n_items, dtype=np.uint64)
    with np.errstate(over="ignore"):
        x = (idx + np.uint64(0x9E3779B97F4A7C15)) * np.uint64(0xBF58476D1CE4E5B9)
        x = x ^ (x >> np.uint64(31))
    return (x >> np.uint64(11)).astype(np.float64) / float(1 << 53) * scale


def top_n(scores: Array, n: int) -> tuple[Array, Array]:
    """Return the indices and values of the n largest entries per row, sorted descending.

    Entries equal to ``-inf`` are never returned: their slots hold ``-1`` / ``-inf``.
    """
    rows, cols = scores.shape
    k = min(n, cols)
    if k < cols:
        part = np.argpartition(scores, cols - k, axis=1)[:, cols - k :]
    else:
        part = np.tile(np.arange(cols), (rows, 1))
    vals = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-vals, axis=1, kind="stable")
    idx = np.take_along_axis(part, order, axis=1)
    vals = np.take_along_axis(vals, order, axis=1)
    items = np.full((rows, n), -1, dtype=np.int64)
    out = np.full((rows, n), -np.inf, dtype=np.float64)
    items[:, :k] = idx
    out[:, :k] = vals
    dead = ~np.isfinite(out)
    items[dead] = -1
    out[dead] = -np.inf
    return items, out


def mask_scores(
    scores: Array,
    users: Array,
    *,
    exclude: sp.csr_matrix | None,
    candidates: Array | None,
) -> Array:
    """Set excluded and non-candidate items to ``-inf`` in a (batch, n_items) score block."""
    if candidates is not None:
        scores[:, ~np.asarray(candidates, dtype=bool)] = -np.inf
    if exclude is not None:
        block = sp.csr_matrix(exclude)[users]
        r, c = block.nonzero()
        scores[r, c] = -np.inf
    return scores


class ScoringModel:
    """Base for generators that score every item densely for a batch of users.

    Subclasses implement :meth:`score` (``(len(users), n_items)`` floats, ``-inf`` = never);
    this class turns it into the :class:`Recommender` ``recommend`` in memory-bounded batches.
    """

    n_items: int = 0

    def score(self, users: Array) -> Array:
        """Return dense scores for a batch of users (implemented by subclasses)."""
        raise NotImplementedError

    def recommend(
        self,
        users: Array,
        n: int,
        *,
        exclude: sp.csr_matrix | None = None,
        candidates: Array | None = None,
    ) -> tuple[Array, Array]:
        """Return the top-n items and scores per user, best first, honouring exclusions."""
        users = np.asarray(users, dtype=np.int64)
        items = np.full((len(users), n), -1, dtype=np.int64)
        scores = np.full((len(users), n), -np.inf)
        for start in range(0, len(users), BATCH):
            batch = users[start : start + BATCH]
            block = np.asarray(self.score(batch), dtype=np.float64) + tie_break(self.n_items)
            block = mask_scores(block, batch, exclude=exclude, candidates=candidates)
            items[start : start + BATCH], scores[start : start + BATCH] = top_n(block, n)
        return items, scores
