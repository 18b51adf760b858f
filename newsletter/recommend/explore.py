"""Exploration slots: a few items drawn at random from just below the exploit cut, logged.

:func:`explore` keeps the best ``n - slots`` items of each ranked list and fills the last
``slots`` positions with items drawn without replacement from the next ``pool`` ranked items.
The draw is a deterministic hash of (seed, user, item), so re-running a run reproduces it, and
each explored slot records its inclusion probability (``slots / pool``) for off-policy
evaluation; exploit slots have propensity 1.
"""

from __future__ import annotations

import numpy as np

from newsletter.recommend.base import Array

MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def hash01(seed: int, users: Array, items: Array) -> Array:
    """Return deterministic pseudo-random numbers in [0, 1) per (seed, user, item)."""
    with np.errstate(over="ignore"):
        base = np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15)
        x: Array = base ^ (users.astype(np.uint64) * np.uint64(0xBF58476D1CE4E5B9))
        x = x ^ (items.astype(np.uint64) * np.uint64(0x94D049BB133111EB))
        x = (x ^ (x >> np.uint64(31))) * np.uint64(0xBF58476D1CE4E5B9)
        x = x ^ (x >> np.uint64(29))
    return np.asarray((x >> np.uint64(11)).astype(np.float64) / float(1 << 53))


def explore(
    users: Array, ranked: Array, scores: Array, *, n: int, slots: int, seed: int
) -> tuple[Array, Array, Array, Array]:
    """Return (items, scores, explored mask, propensities) of width n from a longer ranking."""
    exploit = max(n - slots, 0)
    items = ranked[:, :n].copy()
    out_scores = scores[:, :n].copy()
    explored = np.zeros(items.shape, dtype=bool)
    propensity = np.ones(items.shape)
    pool = ranked[:, exploit:]
    if slots <= 0 or pool.shape[1] <= slots:
        return items, out_scores, explored, propensity
    prio = hash01(seed, np.repeat(users[:, None], pool.shape[1], axis=1), np.maximum(pool, 0))
    prio = np.where(pool >= 0, prio, -1.0)
    pick = np.argsort(-prio, axis=1, kind="stable")[:, :slots]
    chosen = np.take_along_axis(pool, pick, axis=1)
    ok = chosen >= 0
    width = (pool >= 0).sum(axis=1, keepdims=True)
    items[:, exploit:n] = np.where(ok, chosen, items[:, exploit:n])
    out_scores[:, exploit:n] = np.where(
        ok, np.take_along_axis(scores[:, exploit:], pick, 1), -np.inf
    )
    explored[:, exploit:n] = ok
    propensity[:, exploit:n] = np.where(ok, slots / np.maximum(width, 1), 1.0)
    return items, out_scores, explored, propensity
