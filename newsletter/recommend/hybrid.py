"""Hybrid recommender: merge every generator's candidates, rank, re-rank, explore, explain.

Typical use by the planner::

    model = HybridRecommender(HybridConfig()).fit(data, catalog, now=now, feedback=feedback)
    items, scores = model.recommend(users, 8)                   # Recommender protocol
    recs = model.recommend_explained(users, 8, exclude=sent)    # + sources, propensities, reasons
    holdout = model.popular_items(8)                            # the `popular` arm
    section = model.section("fresh", users, 3)                  # "New in your topics"

Generators: ``ease`` (catalogues up to ``ease_max_catalogue`` items; above that sparse
``knn`` takes its weight), ``knn``, ``content``, ``fresh`` (content match on items published in
the last ``fresh_days``), ``popularity``, ``prior`` (metadata-predicted popularity) and
``sequence`` (sequential item-kNN over each subscriber's reading order, ``sequence_*``). Each
source's score is divided by the user's best (so sources are comparable) and the features are
blended by a :class:`~newsletter.recommend.ranker.LinearRanker`: calibrated defaults (what
``tune`` picks), or a logistic regression once ``feedback`` (shown slots, clicked or not)
holds both classes. Every item is scored, so every source's candidates are merged by
construction; ``candidates_per_source`` optionally restricts the ranking to the union of each
source's top-k. Users without history use ``cold_start_blend``: content on their declared
topics, then popularity. Re-ranking removes consumed (``exclude_consumed``), inactive, expired
and rule-failing (``filters``) items, then applies MMR diversity (``mmr_lambda`` < 1) and a
per-topic cap; ``explore_slots`` adds logged exploration. Batches of users run on ``threads``
threads; nothing reads the clock (``now`` is a parameter).
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal, Self

import numpy as np
import scipy.sparse as sp

from newsletter.recommend import features as feat
from newsletter.recommend.base import (
    BATCH,
    Array,
    Feedback,
    InteractionData,
    ItemCatalog,
    Reason,
    Recommendations,
    as_seconds,
    mask_scores,
    tie_break,
    top_n,
)
from newsletter.recommend.explain import Explainer
from newsletter.recommend.explore import explore
from newsletter.recommend.freshness import age_decay, estimate_half_life
from newsletter.recommend.ranker import LinearRanker, fit_logistic_ranker
from newsletter.recommend.rerank import available_items, diversify, primary_topics
from newsletter.recommend.weighting import WeightingConfig, consumed_matrix

# What `tune` picks on MovieLens temporal-20 (validation split of the training input only).
DEFAULT_BLEND: dict[str, float] = {
    "ease": 1.0,
    "knn": 0.02,
    "content": 0.2,
    "fresh": 0.0,
    "popularity": 0.0,
    "prior": 0.0,
    "recency": 0.0,
    "sequence": 0.4,
}
# Users without history: content on declared topics first, then popularity.
COLD_START_BLEND: dict[str, float] = {"content": 1.0, "fresh": 0.2, "popularity": 0.3}


def default_weighting() -> WeightingConfig:
    """Rating exponent 3 and a 720-day half-life from each subscriber's latest event (tuned)."""
    return WeightingConfig(value_power=3.0, half_life_days=720.0, decay_from="user")


@dataclass(frozen=True)
class HybridConfig:
    """Everything the hybrid needs to know; defaults come from ``tune`` (benchmarks/README.md).

    ``filters`` are attribute rules (``{"in_stock": True}``; a list value means "one of");
    ``threads`` is how many user batches are scored at once. ``age_half_life_days`` decays
    every personal score (collaborative, content, fresh items) by item age (``"auto"``: the
    half-life of item interest estimated from the interactions, ``None``: no decay);
    ``fresh_recent`` is how many of a subscriber's latest reads the fresh-item generator
    compares new items with.
    """

    weighting: WeightingConfig = field(default_factory=default_weighting)
    ease_lambda: float = 50.0
    ease_max_items: int = 4000
    ease_max_catalogue: int = 10_000
    text_weight: float = 1.0
    topic_weight: float = 1.0
    knn_k: int = 100
    knn_shrink: float = 10.0
    popularity_half_life_days: float | None = 7.0
    recency_half_life_days: float = 30.0
    fresh_days: float = 14.0
    fresh_recent: int = 10
    age_half_life_days: float | Literal["auto"] | None = "auto"
    sequence_window: int = 20
    sequence_last: int = 20
    sequence_decay: float = 0.9
    sequence_min_value: float = 3.5
    blend: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_BLEND))
    cold_start_blend: Mapping[str, float] = field(default_factory=lambda: dict(COLD_START_BLEND))
    candidates_per_source: int | None = None
    exclude_consumed: bool = True
    filters: Mapping[str, Any] = field(default_factory=dict)
    mmr_lambda: float = 1.0
    topic_cap: int | None = None
    explore_slots: int = 0
    explore_pool: int = 30
    seed: int = 0
    threads: int = 2


class HybridRecommender:
    """The product recommender: see the module docstring for the call sequence."""

    name = "hybrid"

    def __init__(self, config: HybridConfig | None = None) -> None:
        """Keep the configuration; nothing is learned until :meth:`fit`."""
        self.config = config or HybridConfig()
        self.ranker = LinearRanker.from_blend(self.config.blend)
        self.generators: dict[str, Any] = {}
        self.n_items = 0

    def fit(
        self,
        data: InteractionData,
        catalog: ItemCatalog,
        *,
        now: float | datetime,
        feedback: Feedback | None = None,
    ) -> Self:
        """Fit every generator, the availability mask and (with feedback) the learned ranker."""
        seconds = as_seconds(now)
        self.n_items = data.n_items
        self.generators = feat.fit_generators(self.config, data, catalog, now=seconds)
        self.age_half_life = self.item_age_half_life(data, catalog, now=seconds)
        decay = age_decay(catalog, now=seconds, half_life_days=self.age_half_life)
        self.age_decay: Array | None = None if np.all(decay == 1.0) else decay
        self.consumed = consumed_matrix(data)
        self.activity = np.log1p(np.diff(self.consumed.indptr)).astype(np.float64)
        self.available = available_items(catalog, now=seconds, filters=self.config.filters)
        self.recency = feat.recency(
            catalog, now=seconds, half_life=self.config.recency_half_life_days
        )
        self.topic_ids = primary_topics(catalog)
        self.embeddings = feat.diversity_embeddings(self.generators["content"], self.config)
        collab = self.generators.get("ease") or self.generators.get("knn")
        self.explainer = Explainer(
            titles=catalog.titles, collaborative=collab, content=self.generators["content"]
        )
        self.ranker = LinearRanker.from_blend(self.effective_blend())
        self.cold_weights = LinearRanker.from_blend(self.config.cold_start_blend).weights
        self.jitter = tie_break(self.n_items, 1e-6).astype(np.float32)
        self.global_features = feat.global_features(self)
        if feedback is not None and len(feedback.user_idx):
            self.fit_ranker(feedback)
        return self

    def reweight(self, blend: dict[str, float]) -> Self:
        """Use `blend` from now on (the fit does not depend on it: no refit needed)."""
        self.config = replace(self.config, blend=dict(blend))
        self.ranker = LinearRanker.from_blend(self.effective_blend())
        return self

    def item_age_half_life(
        self, data: InteractionData, catalog: ItemCatalog, *, now: float
    ) -> float | None:
        """Return the half-life that decays collaborative scores (estimated when "auto")."""
        setting = self.config.age_half_life_days
        if setting == "auto":
            return estimate_half_life(data, catalog, now=now)
        return setting

    def effective_blend(self) -> dict[str, float]:
        """Return the configured blend; without EASE (large catalogue) kNN takes its weight."""
        blend = dict(self.config.blend)
        if "ease" not in self.generators:
            blend["knn"] = blend.get("knn", 0.0) + blend.get("ease", 0.0)
            blend["ease"] = 0.0
        return blend

    def fit_ranker(self, feedback: Feedback) -> bool:
        """Learn the logistic ranker from logged slots; keep the defaults if it cannot."""
        users = np.asarray(feedback.user_idx, dtype=np.int64)
        items = np.asarray(feedback.item_idx, dtype=np.int64)
        pairs: dict[str, list[Array]] = {}
        for start in range(0, len(users), BATCH):
            u, i = users[start : start + BATCH], items[start : start + BATCH]
            block = self.features(u)
            for name, values in block.items():
                pairs.setdefault(name, []).append(values[np.arange(len(u)), i])
        stacked = {k: np.concatenate(v) for k, v in pairs.items()}
        ranker = fit_logistic_ranker(stacked, self.activity[users], feedback.clicked)
        if ranker is not None:
            self.ranker = ranker
        return ranker is not None

    def features(self, users: Array) -> dict[str, Array]:
        """Return every ranking feature for a batch of users, each ``(len(users), n_items)``."""
        return feat.batch_features(self, np.asarray(users, dtype=np.int64))

    def blend(self, users: Array) -> feat.Blend:
        """Return the blended scores of every item for a batch (nothing masked), by source."""
        users = np.asarray(users, dtype=np.int64)
        weights = self.ranker.user_weights(self.activity[users])
        weights[self.activity[users] == 0] = self.cold_weights
        return feat.Blend(self, users, weights)

    def _scored(
        self, users: Array, exclude: sp.csr_matrix | None, candidates: Array | None
    ) -> tuple[Array, feat.Blend]:
        """Return blended scores (excluded items at -inf) and the blend for attribution."""
        mixed = self.blend(users)
        total = mixed.total
        total += self.jitter
        allowed = self.available if candidates is None else self.available & candidates
        total = mask_scores(total, users, exclude=exclude, candidates=allowed)
        if self.config.exclude_consumed:
            total = mask_scores(total, users, exclude=self.consumed, candidates=None)
        if self.config.candidates_per_source:
            block = self.features(users)
            merged = feat.candidate_union(block, self.config.candidates_per_source, allowed)
            total[~merged & np.isfinite(total)] -= 1e3
        return total, mixed

    def recommend(
        self,
        users: Array,
        n: int,
        *,
        exclude: sp.csr_matrix | None = None,
        candidates: Array | None = None,
    ) -> tuple[Array, Array]:
        """Return the top-n items and scores per user (the Recommender protocol)."""
        recs = self.recommend_explained(
            users, n, exclude=exclude, candidates=candidates, reasons=False, sources=False
        )
        return recs.items, recs.scores

    def recommend_explained(
        self,
        users: Array,
        n: int,
        *,
        exclude: sp.csr_matrix | None = None,
        candidates: Array | None = None,
        reasons: bool = True,
        sources: bool = True,
    ) -> Recommendations:
        """Return ranked, re-ranked and explored slots with source, propensity and reasons.

        ``reasons=False`` skips the sentences; ``sources=False`` also skips source attribution
        (``sources`` then holds "" except "explore"), which is what ``recommend`` does.
        """
        users = np.asarray(users, dtype=np.int64)
        starts = range(0, len(users), BATCH)

        def run(start: int) -> tuple[Array, Array, Array, Array]:
            batch = users[start : start + BATCH]
            return self._recommend_batch(batch, n, exclude, candidates, sources or reasons)

        if self.config.threads > 1 and len(starts) > 1:
            with ThreadPoolExecutor(max_workers=self.config.threads) as pool:
                parts = list(pool.map(run, starts))
        else:
            parts = [run(start) for start in starts]
        items = np.vstack([p[0] for p in parts]) if parts else np.zeros((0, n), dtype=np.int64)
        scores = np.vstack([p[1] for p in parts]) if parts else np.zeros((0, n))
        labels = np.vstack([p[2] for p in parts]) if parts else np.zeros((0, n), dtype=object)
        props = np.vstack([p[3] for p in parts]) if parts else np.zeros((0, n))
        why: list[list[Reason]] = []
        for start in starts if reasons else ():
            end = start + BATCH
            why += self.explainer.explain(users[start:end], items[start:end], labels[start:end])
        return Recommendations(users, items, scores, labels, props, why)

    def _recommend_batch(
        self,
        users: Array,
        n: int,
        exclude: sp.csr_matrix | None,
        candidates: Array | None,
        attribute: bool,
    ) -> tuple[Array, Array, Array, Array]:
        """Rank, diversify and explore one batch of users."""
        cfg = self.config
        total, mixed = self._scored(users, exclude, candidates)
        width = n + max(
            cfg.explore_pool if cfg.explore_slots else 0,
            2 * n if cfg.mmr_lambda < 1 or cfg.topic_cap else 0,
        )
        pool, pool_scores = top_n(total, width)
        if cfg.mmr_lambda < 1.0 or cfg.topic_cap is not None:
            pool, pool_scores = diversify(
                pool,
                pool_scores,
                n=width,
                embeddings=self.embeddings,
                topics=self.topic_ids,
                mmr_lambda=cfg.mmr_lambda,
                topic_cap=cfg.topic_cap,
            )
        items, scores, explored, props = explore(
            users, pool, pool_scores, n=n, slots=cfg.explore_slots, seed=cfg.seed
        )
        src = mixed.sources(items) if attribute else np.full(items.shape, "", dtype=object)
        src[explored] = "explore"
        src[items < 0] = ""
        return items, scores, src, props

    def popular_items(self, n: int, *, candidates: Array | None = None) -> Array:
        """Return the n most popular available items (the popularity holdout arm)."""
        allowed = self.available if candidates is None else self.available & candidates
        return self.generators["popularity"].ranking(n, candidates=allowed)

    def section(
        self, source: str, users: Array, n: int, *, exclude: sp.csr_matrix | None = None
    ) -> Recommendations:
        """Return one generator's own list (e.g. "collaborative", "fresh", "popularity")."""
        return feat.section(self, source, np.asarray(users, dtype=np.int64), n, exclude=exclude)
