"""Turn behaviour events into a weighted user x item matrix: the input of every generator.

Weight of one event = ``kind weight`` x ``value factor`` x ``time decay``:

* kind weights are configurable (purchase > cart > click/email click > like > read > view);
  unknown kinds get ``default_kind_weight``;
* the value factor ``(value / value_scale) ** value_power`` uses an explicit strength such as a
  star rating when the store provides one (``InteractionData.value``);
* events whose value is below ``min_value`` (e.g. ratings under 4 stars) are dropped;
* time decay ``0.5 ** ((ref - t) / half_life)`` when a half-life is set, where ``ref`` is
  ``now`` (``decay_from="now"``: old behaviour fades for everyone) or the subscriber's own
  latest event (``decay_from="user"``: a subscriber's recent interests outweigh their old
  ones, however long ago they were last active);
* machine-flagged events (scanner clicks, privacy prefetch opens) are dropped.

Repeated events on the same (user, item) add up.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from newsletter.recommend.base import DAY, Array, InteractionData

DEFAULT_KIND_WEIGHTS: dict[str, float] = {
    "purchase": 4.0,
    "cart": 3.0,
    "click": 2.0,
    "email_click": 2.0,
    "like": 2.0,
    "read": 1.5,
    "view": 1.0,
    "rating": 1.0,
}


@dataclass(frozen=True)
class WeightingConfig:
    """How events become weights: per-kind weights, value transform and time decay."""

    kind_weights: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_KIND_WEIGHTS))
    default_kind_weight: float = 1.0
    value_scale: float = 5.0
    value_power: float = 2.0
    half_life_days: float | None = None
    min_value: float | None = None
    decay_from: str = "now"


def event_weights(data: InteractionData, config: WeightingConfig, *, now: float) -> Array:
    """Return one non-negative weight per event (0 for machine-flagged events)."""
    kinds = np.asarray(data.kind)
    weights = np.full(len(kinds), config.default_kind_weight, dtype=np.float64)
    for kind in np.unique(kinds):
        w = config.kind_weights.get(str(kind), config.default_kind_weight)
        weights[kinds == kind] = w
    if data.value is not None:
        ratio = np.clip(np.asarray(data.value, dtype=np.float64) / config.value_scale, 0.0, None)
        weights *= ratio**config.value_power
        if config.min_value is not None:
            weights[np.asarray(data.value, dtype=np.float64) < config.min_value] = 0.0
    if config.half_life_days:
        times = np.asarray(data.timestamp, dtype=np.float64)
        ref = np.full(len(times), now)
        if config.decay_from == "user" and len(times):
            last = np.full(data.n_users, -np.inf)
            np.maximum.at(last, data.user_idx, times)
            ref = last[data.user_idx]
        age_days = np.maximum(ref - times, 0.0) / DAY
        weights *= 0.5 ** (age_days / config.half_life_days)
    if data.machine is not None:
        weights[np.asarray(data.machine, dtype=bool)] = 0.0
    return weights


def interaction_matrix(
    data: InteractionData, config: WeightingConfig | None = None, *, now: float
) -> sp.csr_matrix:
    """Return the weighted user x item CSR matrix (float32), duplicates summed."""
    config = config or WeightingConfig()
    weights = event_weights(data, config, now=now)
    keep = weights > 0
    matrix = sp.csr_matrix(
        (weights[keep].astype(np.float32), (data.user_idx[keep], data.item_idx[keep])),
        shape=(data.n_users, data.n_items),
    )
    matrix.sum_duplicates()
    return matrix


def consumed_matrix(data: InteractionData) -> sp.csr_matrix:
    """Return a boolean-like user x item matrix of everything a human subscriber touched."""
    keep = np.ones(len(data.user_idx), dtype=bool)
    if data.machine is not None:
        keep &= ~np.asarray(data.machine, dtype=bool)
    ones = np.ones(int(keep.sum()), dtype=np.float32)
    matrix = sp.csr_matrix(
        (ones, (data.user_idx[keep], data.item_idx[keep])), shape=(data.n_users, data.n_items)
    )
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    return matrix


def recent_reads(
    data: InteractionData, config: WeightingConfig, *, now: float, recent: int, decay: float
) -> sp.csr_matrix:
    """Return each subscriber's ``recent`` latest counted events weighted ``decay ** rank``.

    Events count when ``config`` gives them a positive weight; rank 0 is the latest (ties in
    time are broken by item index), so the row of a subscriber says what they read lately.
    """
    keep = event_weights(data, config, now=now) > 0
    users, items = data.user_idx[keep], data.item_idx[keep]
    order = np.lexsort((items, np.asarray(data.timestamp)[keep], users))
    users, items = users[order], items[order]
    shape = (data.n_users, data.n_items)
    if len(users) == 0:
        return sp.csr_matrix((np.zeros(0, dtype=np.float32), (users, items)), shape=shape)
    ends = np.r_[np.flatnonzero(np.diff(users)) + 1, len(users)]
    rank = np.repeat(ends, np.diff(np.r_[0, ends])) - 1 - np.arange(len(users))
    sel = rank < recent
    values = np.power(decay, rank[sel].astype(np.float64)).astype(np.float32)
    matrix = sp.csr_matrix((values, (users[sel], items[sel])), shape=shape)
    matrix.sum_duplicates()
    return matrix
