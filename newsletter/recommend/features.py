"""Feature plumbing for the hybrid: fit the generators, compute and blend batch features.

Kept apart from ``hybrid.py`` so the orchestration there stays readable. Every function works
on a batch of users and dense ``(batch, n_items)`` float32 blocks.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp
from sklearn.decomposition import TruncatedSVD
from sklearn.preprocessing import normalize

from newsletter.recommend.base import (
    DAY,
    Array,
    InteractionData,
    ItemCatalog,
    Recommendations,
    mask_scores,
    to_dense,
    top_n,
)
from newsletter.recommend.collaborative import EASE, ItemKNN
from newsletter.recommend.content import ContentModel
from newsletter.recommend.popular import MetadataPrior, Popularity
from newsletter.recommend.ranker import FEATURES, SOURCE_FEATURES, normalise_rows

if TYPE_CHECKING:
    from newsletter.recommend.hybrid import HybridConfig, HybridRecommender

SOURCE_LABELS = ("collaborative", "collaborative", "content", "fresh", "popularity", "popularity")


def fit_generators(
    config: HybridConfig, data: InteractionData, catalog: ItemCatalog, *, now: float
) -> dict[str, Any]:
    """Fit the generators the configuration needs (EASE only for small catalogues)."""
    w = config.weighting
    gens: dict[str, Any] = {}
    if config.blend.get("ease", 0.0) > 0 and data.n_items <= config.ease_max_catalogue:
        gens["ease"] = EASE(lam=config.ease_lambda, max_items=config.ease_max_items, weighting=w)
    if config.blend.get("knn", 0.0) > 0 or "ease" not in gens:
        gens["knn"] = ItemKNN(k=config.knn_k, shrink=config.knn_shrink, weighting=w)
    gens["content"] = ContentModel(
        text_weight=config.text_weight, topic_weight=config.topic_weight, weighting=w
    )
    gens["popularity"] = Popularity(
        weighting=replace(w, value_power=0.0, decay_from="now"),
        half_life_days=config.popularity_half_life_days,
    )
    if config.blend.get("prior", 0.0) > 0:
        gens["prior"] = MetadataPrior(weighting=replace(w, half_life_days=None))
    for gen in gens.values():
        gen.fit(data, catalog, now=now)
    fresh_since = now - config.fresh_days * DAY
    published = np.asarray(catalog.published_at, dtype=np.float64)
    gens["fresh_mask"] = (published >= fresh_since) & (published <= now)
    return gens


def recency(catalog: ItemCatalog, *, now: float, half_life: float) -> Array:
    """Return ``0.5 ** (age_days / half_life)`` per item (future items count as new)."""
    age = np.maximum(now - np.asarray(catalog.published_at, dtype=np.float64), 0.0) / DAY
    return (0.5 ** (age / half_life)).astype(np.float32)


def diversity_embeddings(content: ContentModel, config: HybridConfig) -> Array | None:
    """Return dense unit item vectors for MMR (None when diversity is off)."""
    if config.mmr_lambda >= 1.0:
        return None
    vectors: Any = content.vectors
    if isinstance(vectors, np.ndarray):
        return vectors.astype(np.float32)
    dims = min(64, min(vectors.shape) - 1)
    if dims < 2:
        return to_dense(vectors).astype(np.float32)
    reduced = TruncatedSVD(n_components=dims, random_state=0).fit_transform(vectors)
    return normalize(reduced).astype(np.float32)


def _global(values: Array, rows: int, *, log: bool) -> Array:
    """Scale an item vector to [0, 1] and broadcast it to ``rows`` rows without copying."""
    v = np.log1p(np.maximum(values, 0.0)) if log else np.maximum(values, 0.0)
    top = v.max() if len(v) else 0.0
    v = (v / top if top > 0 else np.zeros_like(v)).astype(np.float32)
    return np.broadcast_to(v, (rows, len(v)))


def batch_features(model: HybridRecommender, users: Array) -> dict[str, Array]:
    """Return every ranking feature for one batch of users (see ranker.FEATURES)."""
    gens, rows, n = model.generators, len(users), model.n_items
    zeros = np.broadcast_to(np.zeros(n, dtype=np.float32), (rows, n))
    out: dict[str, Array] = {}
    for name in ("ease", "knn", "content"):
        out[name] = (
            normalise_rows(gens[name].score(users), model.available) if name in gens else zeros
        )
    out["fresh"] = out["content"] * gens["fresh_mask"][None, :]
    out["popularity"] = _global(gens["popularity"].item_scores, rows, log=True)
    out["prior"] = _global(gens["prior"].item_scores, rows, log=False) if "prior" in gens else zeros
    out["recency"] = np.broadcast_to(model.recency, (rows, n))
    return out


def blend(block: dict[str, Array], weights: Array) -> tuple[Array, Array]:
    """Return the weighted sum of features and, per item, the index of the top source."""
    rows, n = block["content"].shape
    total = np.zeros((rows, n), dtype=np.float64)
    best = np.full((rows, n), -np.inf, dtype=np.float32)
    source = np.zeros((rows, n), dtype=np.int8)
    for f, name in enumerate(FEATURES):
        w = weights[:, f : f + 1]
        if not np.any(w):
            continue
        part = w * block[name]
        total += part
        if name in SOURCE_FEATURES:
            better = part > best
            best = np.where(better, part, best)
            source[better] = SOURCE_FEATURES.index(name)
    return total, source


def candidate_union(block: dict[str, Array], per_source: int, allowed: Array) -> Array:
    """Return which items are among some source's top ``per_source`` for each user."""
    rows, n = block["content"].shape
    merged = np.zeros((rows, n), dtype=bool)
    k = min(per_source, n)
    for name in SOURCE_FEATURES:
        values = np.where(allowed[None, :], block[name], -np.inf)
        if k < n:
            idx = np.argpartition(-values, k - 1, axis=1)[:, :k]
        else:
            idx = np.tile(np.arange(n), (rows, 1))
        ok = np.isfinite(np.take_along_axis(values, idx, axis=1))
        r = np.repeat(np.arange(rows), k).reshape(rows, k)
        merged[r[ok], idx[ok]] = True
    return merged


def section(
    model: HybridRecommender, source: str, users: Array, n: int, *, exclude: sp.csr_matrix | None
) -> Recommendations:
    """Return one source's own top-n list, with reasons, for a digest section."""
    gens = model.generators
    names = {"collaborative": "ease" if "ease" in gens else "knn", "content": "content"}
    names |= {"fresh": "content", "popularity": "popularity"}
    if source not in names:
        raise ValueError(f"unknown section source {source!r}: choose one of {sorted(names)}")
    scores = np.asarray(gens[names[source]].score(users), dtype=np.float64)
    if source == "fresh":
        scores[:, ~gens["fresh_mask"]] = -np.inf
    scores = mask_scores(scores, users, exclude=exclude, candidates=model.available)
    if model.config.exclude_consumed:
        scores = mask_scores(scores, users, exclude=model.consumed, candidates=None)
    items, top = top_n(scores, n)
    sources = np.where(items >= 0, source, "").astype(object)
    props = np.ones(items.shape)
    reasons = model.explainer.explain(users, items, sources)
    return Recommendations(users, items, top, sources, props, reasons)
