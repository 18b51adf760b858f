"""Thompson sampling over fresh and rarely shown items, with logged propensities.

Each candidate item has a Beta(s m + clicks, s (1 - m) + exposures - clicks) posterior on its
click-through rate (human clicks over exposures in earlier messages), from a Beta prior of
mean ``m`` and strength ``s`` pseudo-exposures: by default the uniform Beta(1, 1) (m = 1/2,
s = 2), and in the planner an informative prior (:func:`prior_means`): the campaign's slot
click-through, scaled by the item's site popularity relative to the catalogue's. With the
uniform prior an email slot whose real click-through is 1-5% is explored as if every unshown
item had a 50% chance: the exploration slots become uniform draws from the catalogue and click
an order of magnitude less than the rest of the message. The policy draws a
*bank* of ``draws`` posterior samples once per run; an exploration slot then picks one draw
uniformly at random and takes the best item in it that the message does not already hold.

Propensity: because the policy is exactly "a uniform draw from the bank", the probability it
chose item ``i`` given the message's exclusions is the share of bank draws whose best
non-excluded item is ``i``. That share is what we log; it is also a Monte-Carlo estimate of
the ideal Thompson probability P(i is the argmax of the posterior), with standard error about
``sqrt(p (1 - p) / draws)``. It is always in (0, 1] for the chosen item. Pure numpy; the
random generator is injected, so plans are reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Array = np.ndarray
TOP_PER_DRAW = 16


@dataclass(frozen=True)
class ThompsonBank:
    """A bank of posterior draws, stored as each draw's top items (candidate item indices)."""

    items: Array  # candidate item indices (into the catalogue), shape (K,)
    top: Array  # shape (draws, L): per draw, catalogue item indices best first
    rare: Array | None = None  # per candidate, shown to fewer than max_exposures (None: all)

    def rarely_shown(self) -> Array:
        """The candidates still short of evidence (catalogue indices)."""
        return self.items if self.rare is None else self.items[np.asarray(self.rare, bool)]

    @property
    def draws(self) -> int:
        return int(self.top.shape[0])


def prior_means(
    popularity: Array, *, clicks: float, exposures: float, spread: float = 4.0
) -> tuple[Array, float]:
    """Per item, the prior mean click-through, and the prior strength (pseudo-exposures).

    The campaign's slot click-through ``m0 = (clicks + 1) / (exposures + 50)`` (a 2% prior
    before any send), times the item's relative appeal ``(p + mean p) / (2 mean p)`` of its
    site popularity ``p`` (an item nobody read gets half the average), clipped to
    ``[1 / spread, spread]``. The strength is ``2 / m0``: two pseudo-clicks' worth of evidence,
    so a few real exposures already move the posterior.
    """
    popularity = np.clip(np.asarray(popularity, dtype=np.float64), 0.0, None)
    m0 = (float(clicks) + 1.0) / (float(exposures) + 50.0)
    mean = float(popularity.mean()) if len(popularity) else 0.0
    appeal = (popularity + mean) / (2.0 * mean) if mean > 0 else np.ones(len(popularity))
    means = np.clip(m0 * np.clip(appeal, 1.0 / spread, spread), 1e-4, 0.5)
    return means, 2.0 / m0


def thompson_bank(
    *,
    items: Array,
    clicks: Array,
    exposures: Array,
    rng: np.random.Generator,
    draws: int = 256,
    prior_mean: Array | None = None,
    prior_strength: float = 2.0,
    max_exposures: int | None = None,
) -> ThompsonBank:
    """Draw `draws` CTR samples per candidate from its Beta posterior and keep each draw's top.

    ``prior_mean`` (per candidate) and ``prior_strength`` set the Beta prior (default: the
    uniform Beta(1, 1)); ``max_exposures`` marks the candidates shown fewer times as rare.
    """
    items = np.asarray(items, dtype=np.int64)
    clicks = np.clip(np.asarray(clicks, dtype=np.float64), 0, None)
    exposures = np.maximum(np.asarray(exposures, dtype=np.float64), clicks)
    rare = None if max_exposures is None else exposures < max_exposures
    if len(items) == 0:
        return ThompsonBank(items=items, top=np.zeros((draws, 0), dtype=np.int64), rare=rare)
    mean = np.full(len(items), 0.5) if prior_mean is None else np.asarray(prior_mean, float)
    a, b = prior_strength * mean, prior_strength * (1.0 - mean)
    samples = rng.beta(a + clicks, b + exposures - clicks, size=(draws, len(items)))
    width = min(TOP_PER_DRAW, len(items))
    part = np.argpartition(-samples, width - 1, axis=1)[:, :width]
    order = np.argsort(-np.take_along_axis(samples, part, axis=1), axis=1, kind="stable")
    top = items[np.take_along_axis(part, order, axis=1)]
    return ThompsonBank(items=items, top=top, rare=rare)


def winners(bank: ThompsonBank, excluded: Array) -> Array:
    """Per (message, draw): the best item of the draw not excluded for that message (-1: none).

    `excluded` is a boolean (messages, n_catalogue_items) mask.
    """
    if bank.top.shape[1] == 0:
        return np.full((excluded.shape[0], bank.draws), -1, dtype=np.int64)
    blocked = excluded[:, bank.top]  # (B, draws, L)
    free = ~blocked
    first = free.argmax(axis=2)
    best = bank.top[np.arange(bank.draws)[None, :], first]
    return np.where(free.any(axis=2), best, -1)


def explore(
    bank: ThompsonBank,
    excluded: Array,
    *,
    rng: np.random.Generator,
    personal: Array | None = None,
    bank_share: float = 1.0,
) -> tuple[Array, Array]:
    """Pick one exploration item per message and its propensity (item -1 when none is left).

    With ``personal`` (messages x M candidate item indices, -1 = none), the slot is a mixture:
    with probability ``bank_share`` the bank's pick, otherwise a uniform draw from the
    message's own candidates not excluded (when only one part has an item, that part). The
    propensity is the mixture's exact probability of the chosen item. `excluded` (messages x
    catalogue items, bool) is updated in place with the picks.
    """
    n = excluded.shape[0]
    mixed = personal is not None and personal.shape[1] > 0
    if n == 0 or (bank.top.shape[1] == 0 and not mixed):
        return np.full(n, -1, dtype=np.int64), np.zeros(n)
    win = winners(bank, excluded)
    rows = np.arange(n)
    chosen = win[rows, rng.integers(0, bank.draws, size=n)]
    share, p_mine = np.ones(n), np.zeros(n)
    if personal is not None and mixed:
        free = (personal >= 0) & ~excluded[rows[:, None], np.maximum(personal, 0)]
        count = free.sum(axis=1)
        mine = np.where(count > 0, personal[rows, _uniform_free(free, rng)], -1)
        bank_ok = (win >= 0).any(axis=1)
        share = np.where(bank_ok & (count > 0), bank_share, bank_ok.astype(np.float64))
        chosen = np.where(rng.random(n) < share, chosen, mine)
        in_mine = (personal == chosen[:, None]).any(axis=1)
        p_mine = np.where(in_mine, 1.0 / np.maximum(count, 1), 0.0) * (1.0 - share)
    p_bank = (win == chosen[:, None]).mean(axis=1) * share
    propensity = np.where(chosen >= 0, p_bank + p_mine, 0.0)
    picked = np.flatnonzero(chosen >= 0)
    excluded[picked, chosen[picked]] = True
    return chosen, propensity


def _uniform_free(free: Array, rng: np.random.Generator) -> Array:
    """Per row, the column of a uniformly drawn True entry of `free` (0 for an empty row)."""
    keys = np.where(free, rng.random(free.shape), -1.0)
    return keys.argmax(axis=1)


def explore_counts(
    n_messages: int, *, n_items: int, share: float, rng: np.random.Generator
) -> Array:
    """Exploration slots per message: share * n_items, randomly rounded so the mean is exact."""
    target = share * n_items
    base = int(np.floor(target))
    extra = rng.random(n_messages) < (target - base)
    return np.minimum(base + extra.astype(np.int64), n_items)
