"""How much popularity a campaign's ranking needs, chosen on the campaign's own recent data.

Catalogues differ in what drives a click. In a news feed interest is personal and short-lived
and the hybrid's personal scores carry the ranking; in a shop whose products stay relevant for
months and whose tastes are broad, item quality (seen as popularity) explains most of what
people buy, and a ranking without a popularity term sends niche matches that lose to the
bestseller list. No single blend weight is right for both, so :func:`choose_popularity_weight`
picks it per campaign by a temporal validation on the interaction log:

1. fit the hybrid on the events before ``now - holdout_days`` (the cut);
2. for subscribers with history before the cut who consumed something new after it (up to
   ``max_users``, spread evenly over the index range), rank the items available at the cut
   with ``blend + w * popularity`` for every ``w`` of the grid;
3. count hits@n (items first consumed after the cut) and, by the one-standard-error rule,
   keep the weight closest to the configured one among those whose hits are within
   ``sqrt(best hits)`` of the best (too little data keeps the configured weight).

The rule matters because the validation target leans towards popularity: site reads follow
what the site's own pages put in front of people (bestsellers, the homepage), email clicks do
not. On the simulator's long-tail world the most hits come at weight 3, where the hidden
utility of the digest is 6% below weight 0; within one standard error lies weight 1.5, level
with weight 0, while a shop still gets 3 and news 0.1-0.2 (benchmarks/README.md, issue 16).

The cost is one extra fit of the hybrid and one blend per validation batch (the popularity
feature does not depend on the subscriber, so every weight re-uses the same blend).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import scipy.sparse as sp

from newsletter.recommend.base import BATCH, DAY, Array, InteractionData, ItemCatalog
from newsletter.recommend.hybrid import HybridConfig, HybridRecommender

POPULARITY_GRID = (0.0, 0.1, 0.2, 0.4, 0.8, 1.5, 3.0, 6.0)


@dataclass(frozen=True)
class PopularityChoice:
    """The chosen popularity weight, the hits of every weight tried and the users scored."""

    weight: float
    hits: dict[float, int] = field(default_factory=dict)
    users: int = 0


def _seen(data: InteractionData) -> sp.csr_matrix:
    """Users x items, 1 where the user has any event on the item (0/1 int8 CSR)."""
    ones = np.ones(len(data.user_idx), dtype=np.int8)
    shape = (data.n_users, data.n_items)
    matrix = sp.csr_matrix((ones, (data.user_idx, data.item_idx)), shape=shape)
    matrix.sum_duplicates()
    matrix.data[:] = 1
    return matrix


def _validation_users(before: sp.csr_matrix, targets: sp.csr_matrix, max_users: int) -> Array:
    """Users with history before the cut and a new item after it, at most ``max_users``."""
    users = np.flatnonzero((np.diff(targets.indptr) > 0) & (np.diff(before.indptr) > 0))
    if len(users) > max_users:
        users = users[np.linspace(0, len(users) - 1, max_users).astype(np.int64)]
    return users


def choose_popularity_weight(
    config: HybridConfig,
    data: InteractionData,
    catalog: ItemCatalog,
    *,
    now: float,
    n: int = 8,
    holdout_days: float = 7.0,
    grid: tuple[float, ...] = POPULARITY_GRID,
    max_users: int = 2000,
    min_users: int = 50,
) -> PopularityChoice:
    """Return the popularity blend weight with the most next-week hits (see module doc)."""
    configured = float(config.blend.get("popularity", 0.0))
    human = np.ones(len(data.user_idx), dtype=bool)
    if data.machine is not None:
        human = ~np.asarray(data.machine, dtype=bool)
    times = np.asarray(data.timestamp, dtype=np.float64)
    cut = now - holdout_days * DAY
    early, late = data.subset(times < cut), data.subset(human & (times >= cut) & (times < now))
    before = _seen(early)
    after = _seen(late)
    targets = sp.csr_matrix(after - after.multiply(before))
    targets.eliminate_zeros()
    users = _validation_users(before, targets, max_users)
    if len(users) < min_users:
        return PopularityChoice(configured)
    model = HybridRecommender(replace(config, threads=1)).fit(early, catalog, now=cut)
    published = np.asarray(catalog.published_at, dtype=np.float64)
    allowed = model.available & ~(published > cut)
    popularity = model.global_features["popularity"].astype(np.float64)
    grid = tuple(sorted({*grid, configured}))
    hits = dict.fromkeys(grid, 0)
    for start in range(0, len(users), BATCH):
        batch = users[start : start + BATCH]
        base = np.asarray(model.blend(batch).total, dtype=np.float64)
        blocked = (before[batch].toarray() > 0) | ~allowed[None, :]
        wanted = targets[batch].toarray() > 0
        for w in grid:
            scores = np.where(blocked, -np.inf, base + (w - configured) * popularity)
            top = np.argpartition(-scores, min(n, scores.shape[1] - 1), axis=1)[:, :n]
            found = np.take_along_axis(wanted, top, axis=1)
            found &= np.isfinite(np.take_along_axis(scores, top, axis=1))
            hits[w] += int(found.sum())
    most = max(hits.values())
    close = [w for w in grid if hits[w] >= most - np.sqrt(most)]
    chosen = min(close, key=lambda w: (abs(w - configured), w))
    return PopularityChoice(float(chosen), hits, len(users))
