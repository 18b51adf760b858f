"""Collaborative generators: sparse item-to-item cosine kNN and the EASE linear item model.

Both score a user as ``x_u @ S`` where ``x_u`` is the user's weighted history row and ``S`` an
item x item matrix, so both can say which history item contributed most to a score
(:meth:`ItemModel.anchors`, used for "Because you read <title>").

* :class:`ItemKNN` -- cosine on co-occurrence, top-k neighbours per item, built in row chunks
  as sparse matrices: memory grows with ``n_items * k``, so it scales to 100k+ items.
* :class:`EASE` -- closed-form linear item model (Steck 2019) over the ``max_items`` most
  engaged items (a dense ``m x m`` inverse), better on small catalogues.
* :func:`collaborative_for` picks EASE when the engaged catalogue fits, else ItemKNN.
"""

from __future__ import annotations

from typing import Any, Self

import numpy as np
import scipy.sparse as sp

from newsletter.recommend.base import (
    Array,
    InteractionData,
    ItemCatalog,
    ScoringModel,
    best_anchors,
    to_dense,
)
from newsletter.recommend.weighting import WeightingConfig, interaction_matrix

CELLS_PER_CHUNK = 8_000_000


class ItemModel(ScoringModel):
    """Shared scoring and attribution for models of the form ``scores = X[users] @ S``."""

    name = "item-model"

    def __init__(self, *, weighting: WeightingConfig | None = None) -> None:
        """Keep the weighting used to build the user x item matrix."""
        self.weighting = weighting or WeightingConfig()
        self.matrix: sp.csr_matrix = sp.csr_matrix((0, 0))
        self.items: Array = np.zeros(0, dtype=np.int64)
        # sparse CSR (ItemKNN) or dense ndarray (EASE); Any keeps the scipy stubs quiet
        self.weights: Any = sp.csr_matrix((0, 0))

    def fit_weights(self, matrix: sp.csr_matrix) -> None:
        """Learn ``self.items`` (columns modelled) and ``self.weights`` (implemented below)."""
        raise NotImplementedError

    def fit(self, data: InteractionData, catalog: ItemCatalog, *, now: float) -> Self:
        """Build the weighted interaction matrix and learn the item x item weights."""
        self.matrix = interaction_matrix(data, self.weighting, now=now)
        self.n_items = data.n_items
        self.fit_weights(self.matrix)
        return self

    def score_rows(self, rows: sp.csr_matrix) -> Array:
        """Return ``rows @ S`` for history rows restricted to the modelled items."""
        return to_dense(rows @ self.weights)

    def pair_weights(self, hist: Array, items: Array) -> Array:
        """Return the dense block ``S[hist][:, items]`` (positions in the modelled items)."""
        return to_dense(self.weights[hist][:, items])

    def score_sparse(self, users: Array) -> sp.csr_matrix | None:
        """Return ``X[users] @ S`` as CSR when S is sparse over all items (None otherwise)."""
        weights: Any = self.weights
        if isinstance(weights, np.ndarray) or len(self.items) != self.n_items:
            return None
        return sp.csr_matrix(self.matrix[users] @ weights, dtype=np.float32)

    def score(self, users: Array) -> Array:
        """Return ``X[users] @ S`` spread back onto the full item index space."""
        if len(self.items) == self.n_items:
            return self.score_rows(self.matrix[users])
        part = self.score_rows(self.matrix[users][:, self.items])
        out = np.zeros((len(users), self.n_items), dtype=np.float32)
        out[:, self.items] = part
        return out

    def anchors(self, users: Array, items: Array) -> Array:
        """Return, per (user, item), the history item contributing most to its score (-1: none)."""
        weights: Any = self.weights
        if weights.shape != (self.n_items, self.n_items):
            return self._anchors_per_user(users, items)
        history = sp.csr_matrix(self.matrix[np.asarray(users)])
        if isinstance(weights, np.ndarray):
            return best_anchors(history, items, lambda j, i: weights[j, i])
        return best_anchors(history, items, lambda j, i: np.asarray(weights[j, i]).ravel())

    def _anchors_per_user(self, users: Array, items: Array) -> Array:
        """Per-user attribution (EASE in the dual form or on a subset of items)."""
        pos = np.full(self.n_items, -1, dtype=np.int64)
        pos[self.items] = np.arange(len(self.items))
        out = np.full(items.shape, -1, dtype=np.int64)
        for r, user in enumerate(np.asarray(users)):
            row = self.matrix[int(user)]
            hist, w = row.indices, row.data
            hp, ip = pos[hist], pos[np.maximum(items[r], 0)]
            ok_h, ok_i = hp >= 0, (ip >= 0) & (items[r] >= 0)
            if not ok_h.any() or not ok_i.any():
                continue
            sub = self.pair_weights(hp[ok_h], ip[ok_i])
            contrib = w[ok_h, None] * sub
            best = contrib.argmax(axis=0)
            good = contrib[best, np.arange(contrib.shape[1])] > 0
            out[r, np.flatnonzero(ok_i)[good]] = hist[ok_h][best[good]]
        return out


class ItemKNN(ItemModel):
    """Item-to-item cosine similarity with sparse top-k neighbours per item."""

    name = "item-knn"

    def __init__(
        self, *, k: int = 100, shrink: float = 10.0, weighting: WeightingConfig | None = None
    ) -> None:
        """``k`` neighbours per item; ``shrink`` damps similarities built on little support."""
        super().__init__(weighting=weighting)
        self.k = k
        self.shrink = shrink

    def fit_weights(self, matrix: sp.csr_matrix) -> None:
        """Compute cosine similarities chunk by chunk, keeping the top-k per item row."""
        n = matrix.shape[1]
        xt = sp.csr_matrix(matrix.T)
        norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=0)).ravel())
        blocks = []
        chunk = max(16, CELLS_PER_CHUNK // max(n, 1))
        for start in range(0, n, chunk):
            co = (xt[start : start + chunk] @ matrix).toarray()
            denom = np.outer(norms[start : start + chunk], norms) + self.shrink + 1e-12
            sim = co / denom
            sim[np.arange(sim.shape[0]), np.arange(start, start + sim.shape[0])] = 0.0
            blocks.append(keep_top_k(sim, self.k))
        self.items = np.arange(n)
        self.weights = sp.vstack(blocks).tocsr().astype(np.float32)


def keep_top_k(dense: Array, k: int) -> sp.csr_matrix:
    """Keep the k largest positive entries of each row of a dense block as a CSR matrix."""
    k = min(k, dense.shape[1])
    idx = np.argpartition(-dense, k - 1, axis=1)[:, :k]
    vals = np.take_along_axis(dense, idx, axis=1)
    rows = np.repeat(np.arange(dense.shape[0]), k)
    keep = vals.ravel() > 0
    return sp.csr_matrix((vals.ravel()[keep], (rows[keep], idx.ravel()[keep])), shape=dense.shape)


class EASE(ItemModel):
    """Embarrassingly shallow autoencoder: ``B = I - P / diag(P)``, ``P = (X'X + lambda I)^-1``.

    With fewer users than engaged items it uses the Woodbury identity,
    ``P = (I - X' (lambda I + X X')^-1 X) / lambda``, so the inverse is users x users and no
    item x item matrix is ever formed; otherwise the ``max_items`` most engaged items are solved
    directly (a dense ``m x m`` inverse).
    """

    name = "ease"

    def __init__(
        self,
        *,
        lam: float = 200.0,
        max_items: int = 4000,
        weighting: WeightingConfig | None = None,
    ) -> None:
        """``lam`` is the L2 penalty; ``max_items`` bounds the size of the dense inverse."""
        super().__init__(weighting=weighting)
        self.lam = lam
        self.max_items = max_items
        self.dual: Array | None = None
        self.diag: Array = np.zeros(0)
        self.sub: sp.csr_matrix = sp.csr_matrix((0, 0))

    def fit_weights(self, matrix: sp.csr_matrix) -> None:
        """Solve the closed form, in the dual when users are fewer than engaged items."""
        counts = np.diff(sp.csc_matrix(matrix).indptr)
        engaged = np.flatnonzero(counts > 0)
        active = matrix[np.diff(matrix.indptr) > 0]
        if active.shape[0] < len(engaged) and active.shape[0] <= self.max_items:
            self.items = engaged
            self._fit_dual(sp.csr_matrix(active[:, engaged], dtype=np.float64))
            return
        if len(engaged) > self.max_items:
            top = np.argsort(-counts[engaged], kind="stable")[: self.max_items]
            engaged = np.sort(engaged[top])
        sub = matrix[:, engaged]
        gram = (sub.T @ sub).toarray().astype(np.float64)
        gram[np.diag_indices_from(gram)] += self.lam
        inv = np.linalg.inv(gram)
        weights = -inv / np.diag(inv)
        weights[np.diag_indices_from(weights)] = 0.0
        self.items = engaged
        self.weights = weights.astype(np.float32)
        self.dual = None

    def _fit_dual(self, sub: sp.csr_matrix) -> None:
        """Keep ``K X`` with ``K = (lambda I + X X')^-1`` and the diagonal of ``P``."""
        kernel = to_dense(sub @ sub.T)
        kernel[np.diag_indices_from(kernel)] += self.lam
        self.dual = np.linalg.solve(kernel, to_dense(sub))
        self.diag = (1.0 - np.asarray(sub.multiply(self.dual).sum(axis=0)).ravel()) / self.lam
        self.sub = sub

    def score_sparse(self, users: Array) -> sp.csr_matrix | None:
        """EASE scores are dense (every item gets a weight): no sparse form."""
        return None

    def score_rows(self, rows: sp.csr_matrix) -> Array:
        """Return ``rows @ B``; in the dual ``rows - (rows @ P) / diag(P)``."""
        if self.dual is None:
            return super().score_rows(rows)
        dense = to_dense(rows).astype(np.float64)
        rp = (dense - to_dense(rows @ self.sub.T) @ self.dual) / self.lam
        return (dense - rp / self.diag).astype(np.float32)

    def pair_weights(self, hist: Array, items: Array) -> Array:
        """Return ``B[hist][:, items]`` (built from the dual factors when in the dual)."""
        if self.dual is None:
            return super().pair_weights(hist, items)
        eye = (hist[:, None] == items[None, :]).astype(np.float64)
        cross = to_dense(self.sub[:, hist].T @ self.dual[:, items])
        p = (eye - cross) / self.lam
        return eye - p / self.diag[items][None, :]


def collaborative_for(
    n_items: int, *, ease_max_items: int = 4000, weighting: WeightingConfig | None = None
) -> ItemModel:
    """Pick EASE for catalogues small enough for a dense inverse, else sparse ItemKNN."""
    if n_items <= ease_max_items:
        return EASE(max_items=ease_max_items, weighting=weighting)
    return ItemKNN(weighting=weighting)
