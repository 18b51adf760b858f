"""Popularity generator: recency-weighted trending overall and per topic (the holdout arm).

``Popularity(half_life_days=7).fit(data, catalog, now=now)`` scores each item by the sum of
its weighted events, each decayed by its age (``half_life_days=None`` = plain counts). The same
ranking serves the ``popular`` experiment arm (:meth:`Popularity.ranking`) and the "Trending"
digest section, overall or within one topic (:meth:`Popularity.trending`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Self

import numpy as np
import scipy.sparse as sp

from newsletter.recommend.base import DAY, Array, InteractionData, ItemCatalog, ScoringModel
from newsletter.recommend.weighting import WeightingConfig, interaction_matrix


class Popularity(ScoringModel):
    """Score items by recency-weighted engagement; identical for every user."""

    name = "popularity"

    def __init__(
        self, *, weighting: WeightingConfig | None = None, half_life_days: float | None = 7.0
    ) -> None:
        """Configure event weighting; ``half_life_days`` overrides the weighting's decay."""
        self.weighting = replace(weighting or WeightingConfig(), half_life_days=half_life_days)
        self.item_scores: Array = np.zeros(0)
        self.topics: list[list[str]] = []

    def fit(self, data: InteractionData, catalog: ItemCatalog, *, now: float) -> Self:
        """Sum decayed event weights per item."""
        matrix = interaction_matrix(data, self.weighting, now=now)
        self.item_scores = np.asarray(matrix.sum(axis=0)).ravel().astype(np.float64)
        self.n_items = data.n_items
        self.topics = [list(t) for t in catalog.topics]
        return self

    def score(self, users: Array) -> Array:
        """Return the same popularity row for every user in the batch."""
        return np.tile(self.item_scores, (len(users), 1))

    def ranking(self, n: int, *, candidates: Array | None = None) -> Array:
        """Return the n most popular item indices overall (for the popularity holdout arm)."""
        scores = self.item_scores.copy()
        if candidates is not None:
            scores[~np.asarray(candidates, dtype=bool)] = -np.inf
        order = np.argsort(-scores, kind="stable")[:n]
        return order[np.isfinite(scores[order])]

    def trending(self, topic: str, n: int) -> Array:
        """Return the n most popular item indices tagged with ``topic``."""
        mask = np.array([topic in t for t in self.topics], dtype=bool)
        return self.ranking(n, candidates=mask & (self.item_scores > 0))


class MetadataPrior(ScoringModel):
    """Predict an item's popularity from what is known at publish time (text, topics, age).

    A ridge regression from the item's content vector and age buckets to ``log1p`` of its
    engagement, fitted on items that have engagement; it gives brand-new items a sensible
    prior (e.g. a recent, mainstream-topic item) instead of a tie at zero.
    """

    name = "prior"

    def __init__(self, *, alpha: float = 10.0, weighting: WeightingConfig | None = None) -> None:
        """``alpha`` is the ridge penalty; events are weighted by ``weighting`` (no decay)."""
        self.alpha = alpha
        self.weighting = weighting or WeightingConfig()
        self.item_scores: Array = np.zeros(0)

    def fit(self, data: InteractionData, catalog: ItemCatalog, *, now: float) -> Self:
        """Fit the ridge on engaged items and predict every item."""
        from sklearn.linear_model import Ridge

        from newsletter.recommend.content import item_vectors

        matrix = interaction_matrix(data, self.weighting, now=now)
        counts = np.diff(sp.csc_matrix(matrix).indptr).astype(np.float64)
        features = sp.hstack([item_vectors(catalog)[0], age_buckets(catalog, now=now)]).tocsr()
        self.n_items = data.n_items
        engaged = counts > 0
        if engaged.sum() < 2:
            self.item_scores = np.zeros(data.n_items)
            return self
        ridge = Ridge(alpha=self.alpha).fit(features[engaged], np.log1p(counts[engaged]))
        self.item_scores = np.maximum(ridge.predict(features), 0.0)
        return self

    def score(self, users: Array) -> Array:
        """Return the same predicted-popularity row for every user in the batch."""
        return np.tile(self.item_scores, (len(users), 1))


AGE_EDGES_DAYS = np.array([7, 30, 90, 365, 2 * 365, 5 * 365, 10 * 365, 20 * 365, 40 * 365])


def age_buckets(catalog: ItemCatalog, *, now: float) -> sp.csr_matrix:
    """One-hot item age at ``now`` on a log-like scale (future items count as age 0)."""
    age = np.maximum(now - np.asarray(catalog.published_at, dtype=np.float64), 0.0) / DAY
    bucket = np.searchsorted(AGE_EDGES_DAYS, age)
    rows = np.arange(len(age))
    ones = np.ones(len(age))
    return sp.csr_matrix((ones, (rows, bucket)), shape=(len(age), len(AGE_EDGES_DAYS) + 1))
