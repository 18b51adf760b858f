"""Freshness: how fast interest in an item fades, age decay of scores, and fresh-item candidates.

* :func:`estimate_half_life` -- the half-life of item interest, estimated from the interaction
  log: each item's events are modelled as arriving at a rate ``a_i * exp(-lambda * age)`` from
  its publication, observed until ``now``; given how many events an item had, their ages are
  then exponential truncated at the item's observed window, and ``lambda`` is the maximum
  likelihood estimate over every event (a one-dimensional bounded search). News-like logs,
  where most reads come in an item's first days, give days; MovieLens, where a 1995 film is
  rated as steadily in 2016 as in 1996, gives thousands of years (no decay).
* :func:`age_decay` -- ``0.5 ** (age / half_life)`` per item at ``now``: the hybrid multiplies
  every personal score by it -- collaborative, content, fresh items
  (``HybridConfig.age_half_life_days``, ``"auto"`` = estimated).
* :class:`FreshItems` -- a candidate generator for items published within ``days`` of ``now``:
  each is scored by its content similarity to the subscriber's ``recent`` latest reads (the
  most recent weighing most), or to the declared topics when there are no reads. Item vectors
  are TF-IDF by default, sentence embeddings when given (``embeddings.py``).
"""

from __future__ import annotations

from typing import Any, Self

import numpy as np
import scipy.sparse as sp
from scipy.optimize import minimize_scalar

from newsletter.recommend.base import (
    DAY,
    Array,
    InteractionData,
    ItemCatalog,
    ScoringModel,
    to_dense,
)
from newsletter.recommend.weighting import WeightingConfig, recent_reads

# Search range of the half-life (days); an estimate at the upper end means "no decay".
MIN_HALF_LIFE_DAYS = 0.01
MAX_HALF_LIFE_DAYS = 1e6


def _truncated_nll(rate: float, ages: Array, windows: Array) -> float:
    """Negative log-likelihood of ages under an exponential truncated at each window."""
    mass = -np.expm1(-rate * windows) / rate  # integral of exp(-rate * a) over [0, window]
    return float(rate * ages.sum() + np.log(mass).sum())


def estimate_half_life(
    data: InteractionData,
    catalog: ItemCatalog,
    *,
    now: float,
    min_events: int = 50,
) -> float:
    """Return the half-life of item interest in days (``inf``: no decay, or too few events).

    Counts human events on items published at or before ``now`` and at or before the event
    (an event dated before its item's publication counts as age 0).
    """
    published = np.asarray(catalog.published_at, dtype=np.float64)[data.item_idx]
    times = np.asarray(data.timestamp, dtype=np.float64)
    human = np.ones(len(times), dtype=bool)
    if data.machine is not None:
        human = ~np.asarray(data.machine, dtype=bool)
    ok = human & np.isfinite(published) & (published <= now) & (times <= now)
    if int(ok.sum()) < min_events:
        return float("inf")
    ages = np.maximum(times[ok] - published[ok], 0.0) / DAY
    windows = np.maximum((now - published[ok]) / DAY, ages + 1e-6)
    result = minimize_scalar(
        lambda log_rate: _truncated_nll(float(np.exp(log_rate)), ages, windows),
        bounds=(np.log(np.log(2) / MAX_HALF_LIFE_DAYS), np.log(np.log(2) / MIN_HALF_LIFE_DAYS)),
        method="bounded",
        options={"xatol": 1e-4},
    )
    half_life = float(np.log(2) / np.exp(result.x))
    return float("inf") if half_life >= 0.99 * MAX_HALF_LIFE_DAYS else half_life


def age_decay(catalog: ItemCatalog, *, now: float, half_life_days: float | None) -> Array:
    """Return ``0.5 ** (age_days / half_life)`` per item (ones without a finite half-life)."""
    n = catalog.n_items
    if half_life_days is None or not np.isfinite(half_life_days):
        return np.ones(n, dtype=np.float32)
    age = np.maximum(now - np.asarray(catalog.published_at, dtype=np.float64), 0.0) / DAY
    return (0.5 ** (age / half_life_days)).astype(np.float32)


class FreshItems(ScoringModel):
    """Items published in the last ``days`` days, scored by similarity to recent reads."""

    name = "fresh-items"

    def __init__(
        self,
        *,
        days: float = 14.0,
        recent: int = 10,
        decay: float = 0.8,
        vectors: Any = None,
        weighting: WeightingConfig | None = None,
    ) -> None:
        """``recent`` latest reads weighted ``decay ** rank``; ``vectors`` replaces TF-IDF.

        ``vectors`` (items x dims, L2-normalised rows, sparse or dense) is typically the fitted
        content model's vectors or sentence embeddings; None vectorises the catalogue.
        """
        self.days = days
        self.recent = recent
        self.decay = decay
        self.vectors = vectors
        self.weighting = weighting or WeightingConfig()
        self.fresh: Array = np.zeros(0, dtype=np.int64)
        self.query: sp.csr_matrix = sp.csr_matrix((0, 0))
        # Declared topics of subscribers without reads: (subscribers x topics, topics x dims);
        # their product is formed only for the rows scored, so a million subscribers do not
        # keep a dense-ish profile each in the model (that product was 1 KB per subscriber).
        self.declared: tuple[sp.csr_matrix, Any] | None = None

    def fit(self, data: InteractionData, catalog: ItemCatalog, *, now: float) -> Self:
        """Mark the fresh items and keep each subscriber's recency-weighted latest reads."""
        from newsletter.recommend.content import item_vectors

        if self.vectors is None:
            self.vectors = item_vectors(catalog)[0]
        published = np.asarray(catalog.published_at, dtype=np.float64)
        self.n_items = data.n_items
        self.fresh = np.flatnonzero((published >= now - self.days * DAY) & (published <= now))
        self.query = recent_reads(
            data, self.weighting, now=now, recent=self.recent, decay=self.decay
        )
        self.declared = declared_parts(data, catalog, self.vectors)
        return self

    def score_fresh(self, users: Array) -> Array:
        """Return similarities ``(len(users), n_fresh)`` to the fresh items (columns: ``fresh``)."""
        users = np.asarray(users, dtype=np.int64)
        profile = to_dense(self.query[users] @ self.vectors).astype(np.float32)
        empty = np.asarray(self.query[users].sum(axis=1)).ravel() == 0
        if empty.any() and self.declared is not None:
            follows, per_topic = self.declared
            profile[empty] = to_dense(follows[users[empty]] @ per_topic)
        norms = np.linalg.norm(profile, axis=1, keepdims=True)
        profile /= np.where(norms > 0, norms, 1.0)
        fresh_vectors = self.vectors[self.fresh]
        return np.asarray(to_dense(fresh_vectors @ profile.T).T, dtype=np.float32)

    def score(self, users: Array) -> Array:
        """Return similarity to recent reads on fresh items; every other item is ``-inf``."""
        out = np.full((len(users), self.n_items), -np.inf)
        if len(self.fresh):
            out[:, self.fresh] = self.score_fresh(users)
        return out


def declared_parts(
    data: InteractionData, catalog: ItemCatalog, vectors: Any
) -> tuple[sp.csr_matrix, Any] | None:
    """Return (subscribers x topics 0/1, topics x dims mean item vectors): their product is,
    per subscriber, the sum of the mean item vector of each topic they declared (None when
    nobody declared a topic the catalogue has)."""
    declared = data.user_topics or []
    if not any(declared):
        return None
    names: dict[str, int] = {}
    rows, cols = [], []
    for i, item_topics in enumerate(catalog.topics):
        for t in item_topics:
            rows.append(names.setdefault(str(t).lower(), len(names)))
            cols.append(i)
    member = sp.csr_matrix(
        (np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(len(names), catalog.n_items)
    )
    sizes = np.maximum(np.asarray(member.sum(axis=1)).ravel(), 1.0)
    per_topic = sp.diags((1.0 / sizes).astype(np.float32)) @ member @ vectors
    urows, ucols = [], []
    for u, topics in enumerate(declared):
        for t in topics:
            if str(t).lower() in names:
                urows.append(u)
                ucols.append(names[str(t).lower()])
    follows = sp.csr_matrix(
        (np.ones(len(urows), dtype=np.float32), (urows, ucols)), shape=(data.n_users, len(names))
    )
    return follows, per_topic
