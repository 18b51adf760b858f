"""Feature plumbing for the hybrid: fit the generators, compute and blend batch features.

Kept apart from ``hybrid.py`` so the orchestration there stays readable. Every function works
on a batch of users and dense ``(batch, n_items)`` float32 blocks.
"""

from __future__ import annotations

from collections.abc import Collection
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
    scale_rows,
    sparse_row_scale,
    to_dense,
    top_n,
)
from newsletter.recommend.collaborative import EASE, ItemKNN
from newsletter.recommend.content import ContentModel
from newsletter.recommend.freshness import FreshItems
from newsletter.recommend.popular import MetadataPrior, Popularity
from newsletter.recommend.ranker import FEATURES, SOURCE_FEATURES, normalise_rows, row_scale
from newsletter.recommend.sequential import SequentialKNN

if TYPE_CHECKING:
    from newsletter.recommend.hybrid import HybridConfig, HybridRecommender

SOURCE_LABELS = (
    "collaborative",
    "collaborative",
    "content",
    "fresh",
    "popularity",
    "popularity",
    "collaborative",
)
# Generators scored per user over every item (the rest are item vectors shared by every user,
# and ``fresh``, scored on the fresh items only). Every personal score (these and ``fresh``)
# is decayed by item age: interest fades with age whichever source found the match.
USER_SOURCES = ("ease", "knn", "content", "sequence")
AGED = USER_SOURCES


def fit_generators(
    config: HybridConfig, data: InteractionData, catalog: ItemCatalog, *, now: float
) -> dict[str, Any]:
    """Fit the generators the configuration needs (EASE only for small catalogues).

    The fresh-item generator compares items with the content model's vectors (TF-IDF, plus
    sentence embeddings when the catalogue carries them).
    """
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
    if config.blend.get("sequence", 0.0) > 0:
        gens["sequence"] = SequentialKNN(
            window=config.sequence_window,
            last=config.sequence_last,
            decay=config.sequence_decay,
            weighting=replace(w, min_value=config.sequence_min_value),
        )
    for gen in gens.values():
        gen.fit(data, catalog, now=now)
    share_equal_matrices(list(gens.values()))
    gens["fresh"] = FreshItems(
        days=config.fresh_days,
        recent=config.fresh_recent,
        vectors=gens["content"].vectors,
        weighting=w,
    ).fit(data, catalog, now=now)
    fresh_mask = np.zeros(data.n_items, dtype=bool)
    fresh_mask[gens["fresh"].fresh] = True
    gens["fresh_mask"] = fresh_mask
    return gens


def same_matrix(a: Any, b: Any) -> bool:
    """Whether two CSR matrices hold exactly the same entries in the same layout."""
    return (
        a.shape == b.shape
        and a.dtype == b.dtype
        and a.nnz == b.nnz
        and np.array_equal(a.indptr, b.indptr)
        and np.array_equal(a.indices, b.indices)
        and np.array_equal(a.data, b.data)
    )


def share_equal_matrices(gens: list[Any]) -> None:
    """Point generators whose fitted ``matrix`` (the weighted interaction matrix) is equal at
    one object: item kNN and the content model build the same one, and at a million
    subscribers each copy is hundreds of MB in memory and in the run's model artifact."""
    kept: list[Any] = []
    for gen in gens:
        matrix = getattr(gen, "matrix", None)
        if not sp.issparse(matrix):
            continue
        same = next((k for k in kept if k is matrix or same_matrix(k, matrix)), None)
        if same is None:
            kept.append(matrix)
        else:
            gen.matrix = same


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


def batch_features(
    model: HybridRecommender, users: Array, needed: Collection[str] = FEATURES
) -> dict[str, Array]:
    """Return the ``needed`` ranking features for one batch of users (others are zero)."""
    gens, rows, n = model.generators, len(users), model.n_items
    zeros = np.broadcast_to(np.zeros(n, dtype=np.float32), (rows, n))
    out: dict[str, Array] = dict.fromkeys(FEATURES, zeros)
    for name in USER_SOURCES:
        if name in gens and name in needed:
            out[name] = normalise_rows(gens[name].score(users), model.available)
            if name in AGED and model.age_decay is not None:
                out[name] = out[name] * model.age_decay[None, :]
    if "fresh" in needed:
        out["fresh"] = fresh_block(model, users).toarray()
    out["popularity"] = _global(gens["popularity"].item_scores, rows, log=True)
    if "prior" in gens:
        out["prior"] = _global(gens["prior"].item_scores, rows, log=False)
    out["recency"] = np.broadcast_to(model.recency, (rows, n))
    return out


class Blend:
    """The blended score of a batch, keeping each source's contribution for attribution.

    Equivalent to ``sum_f w_f * feature_f`` with the features of :func:`batch_features`.
    Sources that can score sparsely (item-kNN, content neighbours on large catalogues) are
    scaled and summed as CSR and densified once; dense sources are scaled in place and added
    once. That is what keeps 100k subscribers x 20k items within the benchmark budget.
    """

    def __init__(self, model: HybridRecommender, users: Array, weights: Array) -> None:
        """Score and blend the features that have a non-zero weight for this batch."""
        gens = model.generators
        self.weights = weights
        self.parts: dict[str, Any] = {}
        col = {name: weights[:, FEATURES.index(name)].astype(np.float32) for name in FEATURES}
        sparse_sum: sp.csr_matrix | None = None
        dense: list[Array] = []
        decay = model.age_decay
        for name in USER_SOURCES:
            if name not in gens or not np.any(col[name]):
                continue
            sparse = gens[name].score_sparse(users)
            aged = decay if name in AGED else None
            if sparse is not None:
                part = scale_rows(sparse, col[name] * sparse_row_scale(sparse))
                if aged is not None:
                    part = sp.csr_matrix(part.multiply(aged[None, :]), dtype=np.float32)
                self.parts[name] = part
                sparse_sum = part if sparse_sum is None else sparse_sum + part
                continue
            block = np.array(gens[name].score(users), dtype=np.float32, copy=None)
            if not block.flags.writeable or not block.flags.c_contiguous:
                block = np.ascontiguousarray(block).copy()
            block *= row_scale(block, model.available)[:, None]
            np.clip(block, -1.0, 1.0, out=block)
            block *= col[name][:, None]
            if aged is not None:
                block *= aged[None, :]
            self.parts[name] = block
            dense.append(block)
        if np.any(col["fresh"]) and "fresh" in gens and len(gens["fresh"].fresh):
            part = scale_rows(fresh_block(model, users), col["fresh"])
            self.parts["fresh"] = part
            sparse_sum = part if sparse_sum is None else sparse_sum + part
        if sparse_sum is not None:
            self.total = to_dense(sparse_sum).astype(np.float32, copy=False)
        else:
            self.total = np.zeros((len(users), model.n_items), dtype=np.float32)
        for block in dense:
            self.total += block
        for name, vec in model.global_features.items():
            if np.any(col[name]):
                self.total += col[name][:, None] * vec[None, :]
        self.global_features = model.global_features

    def contribution(self, name: str, items: Array) -> Array:
        """Return ``weight * feature`` of source ``name`` at the chosen items (rows aligned)."""
        safe = np.maximum(items, 0)
        rows = np.repeat(np.arange(len(items)), items.shape[1])
        if name in self.parts:
            part = self.parts[name]
            if isinstance(part, np.ndarray):
                return part[rows, safe.ravel()].reshape(items.shape)
            return np.asarray(part[rows, safe.ravel()]).reshape(items.shape)
        if name in self.global_features:
            w = self.weights[:, FEATURES.index(name), None]
            return w * self.global_features[name][safe]
        return np.zeros(items.shape, dtype=np.float32)

    def sources(self, items: Array) -> Array:
        """Return, per chosen item, the label of the source contributing most to its score."""
        parts = [self.contribution(name, items) for name in SOURCE_FEATURES]
        labels = np.array(SOURCE_LABELS, dtype=object)
        return labels[np.argmax(np.stack(parts), axis=0)]


def global_features(model: HybridRecommender) -> dict[str, Array]:
    """Return the user-independent features as item vectors scaled to [0, 1]."""
    gens = model.generators
    out = {"popularity": np.asarray(_global(gens["popularity"].item_scores, 1, log=True)[0])}
    if "prior" in gens:
        out["prior"] = np.asarray(_global(gens["prior"].item_scores, 1, log=False)[0])
    out["recency"] = model.recency
    return out


def fresh_block(model: HybridRecommender, users: Array) -> sp.csr_matrix:
    """Return the fresh-item feature: similarity to recent reads over the best, fresh only."""
    fresh = model.generators["fresh"]
    rows, n = len(users), model.n_items
    if len(fresh.fresh) == 0:
        return sp.csr_matrix(np.zeros((rows, n), dtype=np.float32))
    block = fresh.score_fresh(users)
    block *= row_scale(block, model.available[fresh.fresh])[:, None]
    np.clip(block, 0.0, 1.0, out=block)
    if model.age_decay is not None:
        block *= model.age_decay[fresh.fresh][None, :]
    cols = np.tile(fresh.fresh, rows)
    indptr = np.arange(0, rows * len(fresh.fresh) + 1, len(fresh.fresh))
    return sp.csr_matrix((block.ravel(), cols, indptr), shape=(rows, n))


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
    generator = gens["fresh"] if source == "fresh" else gens[names[source]]
    scores = np.asarray(generator.score(users), dtype=np.float64)
    scores = mask_scores(scores, users, exclude=exclude, candidates=model.available)
    if model.config.exclude_consumed:
        scores = mask_scores(scores, users, exclude=model.consumed, candidates=None)
    items, top = top_n(scores, n)
    sources = np.where(items >= 0, source, "").astype(object)
    props = np.ones(items.shape)
    reasons = model.explainer.explain(users, items, sources)
    return Recommendations(users, items, top, sources, props, reasons)
