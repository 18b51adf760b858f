"""Re-ranking: availability and business rules, MMR diversity and a per-topic cap.

* :func:`available_items` -- active, not expired at ``now``, and passing attribute rules such as
  ``{"in_stock": True}`` (a rule value may also be a list/tuple/set of allowed values).
* :func:`diversify` -- greedy maximal marginal relevance over a per-user pool, vectorised over
  the whole batch: ``lambda * relevance - (1 - lambda) * max cosine to what is already chosen``,
  skipping items whose primary topic has reached ``topic_cap``. Never returns duplicates.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from newsletter.recommend.base import Array, ItemCatalog


def _rule_ok(value: Any, wanted: Any) -> bool:
    """Return whether one attribute value satisfies one rule value."""
    if isinstance(wanted, list | tuple | set | frozenset):
        return value in wanted
    return bool(value == wanted)


def available_items(
    catalog: ItemCatalog, *, now: float, filters: Mapping[str, Any] | None = None
) -> Array:
    """Return a boolean mask of items that may be recommended at ``now``."""
    n = catalog.n_items
    mask = np.ones(n, dtype=bool)
    if catalog.active is not None:
        mask &= np.asarray(catalog.active, dtype=bool)
    if catalog.expires_at is not None:
        expires = np.asarray(catalog.expires_at, dtype=np.float64)
        mask &= ~(expires <= now)
    if filters:
        attrs = catalog.attributes or [{} for _ in range(n)]
        for i, item_attrs in enumerate(attrs):
            if mask[i]:
                mask[i] = all(_rule_ok(item_attrs.get(k), v) for k, v in filters.items())
    return mask


def primary_topics(catalog: ItemCatalog) -> Array:
    """Return an integer id of each item's first topic (-1 for items without topics)."""
    ids: dict[str, int] = {}
    out = np.full(catalog.n_items, -1, dtype=np.int64)
    for i, topics in enumerate(catalog.topics):
        if topics:
            out[i] = ids.setdefault(str(topics[0]).lower(), len(ids))
    return out


def diversify(
    pool: Array,
    relevance: Array,
    *,
    n: int,
    embeddings: Array | None,
    topics: Array | None,
    mmr_lambda: float = 1.0,
    topic_cap: int | None = None,
) -> tuple[Array, Array]:
    """Pick n of each row's pool greedily by MMR and topic cap; return (items, relevance)."""
    rows, width = pool.shape
    valid = (pool >= 0) & np.isfinite(relevance)
    rel = np.where(valid, relevance, 0.0)
    lo = np.where(valid, rel, np.inf).min(axis=1, keepdims=True)
    hi = np.where(valid, rel, -np.inf).max(axis=1, keepdims=True)
    rel = np.where(valid, (rel - lo) / np.maximum(hi - lo, 1e-12), 0.0)
    sim = None
    if embeddings is not None and mmr_lambda < 1.0:
        vec = embeddings[np.maximum(pool, 0)]
        sim = np.einsum("bpd,bqd->bpq", vec, vec)
    topic = topics[np.maximum(pool, 0)] if topics is not None else None
    max_sim = np.zeros((rows, width))
    taken = ~valid
    counts: list[dict[int, int]] = [{} for _ in range(rows)]
    out_items = np.full((rows, n), -1, dtype=np.int64)
    out_rel = np.full((rows, n), -np.inf)
    r_idx = np.arange(rows)
    for step in range(min(n, width)):
        gain = mmr_lambda * rel - (1.0 - mmr_lambda) * max_sim
        gain = np.where(taken, -np.inf, gain)
        if topic_cap is not None and topic is not None:
            gain = np.where(_capped(topic, counts, topic_cap), gain - 1e6, gain)
        pick = gain.argmax(axis=1)
        ok = np.isfinite(gain[r_idx, pick])
        out_items[ok, step] = pool[r_idx[ok], pick[ok]]
        out_rel[ok, step] = relevance[r_idx[ok], pick[ok]]
        taken[r_idx, pick] = True
        if sim is not None:
            max_sim = np.maximum(max_sim, sim[r_idx, pick])
        if topic is not None and topic_cap is not None:
            for r in np.flatnonzero(ok):
                t = int(topic[r, pick[r]])
                counts[r][t] = counts[r].get(t, 0) + 1
    return out_items, out_rel


def _capped(topic: Array, counts: list[dict[int, int]], cap: int) -> Array:
    """Return which pool entries belong to a topic that already reached the cap."""
    out = np.zeros(topic.shape, dtype=bool)
    for r, row_counts in enumerate(counts):
        full = [t for t, c in row_counts.items() if c >= cap and t >= 0]
        if full:
            out[r] = np.isin(topic[r], full)
    return out
