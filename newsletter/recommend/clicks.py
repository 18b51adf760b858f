"""Click model: learn from the emails themselves, corrected for position bias.

A reader clicks a slot when they look at it and like what they see. The position-based model
says ``P(click | item, position k) = theta_k * r(x)``: ``theta_k`` is the chance that position
``k`` is examined (``theta_0 = 1``), ``r(x)`` the chance the reader clicks an item with
features ``x`` once seen. Ranking should follow ``r`` alone; raw clicks overstate the top slots.

* :func:`estimate_position_bias` -- ``theta_k`` from the *randomised* slots only (exploration
  slots whose item did not depend on its relevance, or messages whose slot order was shuffled):
  there the items' appeal is the same at every position, so the click rate at position ``k``
  over the click rate at position 0 is ``theta_k``. Positions with few randomised slots take a
  power law ``(k + 1) ** -eta`` fitted to the others.
* :func:`fit_click_model` -- ``r(x) = exp(b + w . x)`` by inverse propensity weighting: each
  logged slot's target is ``clicked / theta_k``, whose expectation is ``r(x)`` whatever the
  position, and the weights are found by (L2-regularised) Poisson regression (Newton steps),
  which stays convex with these targets. Returns ``None`` when the log is too thin to learn
  from (too few clicks, too few randomised slots); callers then keep the hybrid's ranking.
* :func:`joint_position_bias` -- when the randomised slots never sit at the top (a digest puts
  its exploration slots near the end), ``theta_k`` is fitted with the appeal instead:
  ``log P(click) = b + w . x + gamma_k`` over every logged slot, ``theta_k = exp(gamma_k)``.
  This holds when the features carry what made the ranker put an item at the top; the
  randomised slots, wherever they sit, still break the link between position and appeal.

Features are computed by ``clickrank.py``; this module only sees a design matrix.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from newsletter.recommend.base import Array

MIN_THETA = 0.02  # propensities are clipped here so no slot's weight explodes


@dataclass(frozen=True)
class ExposureLog:
    """Logged slots: who was shown what, where, in which section, when, and what they did.

    ``position`` is 0-based within the message; ``randomised`` marks slots whose item was
    chosen at random (exploration) or whose order was shuffled; ``clicked`` counts only human
    clicks (scanner clicks are excluded upstream); ``sent_at`` is in seconds.
    """

    user_idx: Array
    item_idx: Array
    position: Array
    section: Array
    clicked: Array
    randomised: Array
    sent_at: Array
    send: Array | None = None  # which send (run) a slot belongs to; None: told apart by time

    def __post_init__(self) -> None:
        """Check that every field has one entry per slot."""
        n = len(self.user_idx)
        for name in ("item_idx", "position", "section", "clicked", "randomised", "sent_at", "send"):
            value = getattr(self, name)
            if value is not None and len(value) != n:
                raise ValueError(f"ExposureLog.{name} has length != len(user_idx) ({n})")
        if n and int(np.min(self.position)) < 0:
            raise ValueError("ExposureLog.position must be 0-based (found a negative position)")


@dataclass(frozen=True)
class PositionBias:
    """Examination probability per position (``theta[0] == 1``) and how it was estimated."""

    theta: Array
    exponent: float
    randomised_slots: int

    def at(self, position: Array) -> Array:
        """Return ``theta`` at the given positions (past the last known: the power law)."""
        position = np.asarray(position, dtype=np.int64)
        known = position < len(self.theta)
        tail = (position + 1.0) ** -self.exponent
        inside = self.theta[np.minimum(position, len(self.theta) - 1)]
        return np.maximum(np.where(known, inside, tail), MIN_THETA)


def estimate_position_bias(
    log: ExposureLog, *, min_slots: int = 200, prior_slots: float = 20.0
) -> PositionBias | None:
    """Estimate ``theta_k`` from the randomised slots (None when position 0 has too few).

    Click rates are smoothed towards the power-law fit with ``prior_slots`` pseudo-slots, so
    a position with few randomised slots leans on its neighbours.
    """
    rand = np.asarray(log.randomised, dtype=bool)
    pos = np.asarray(log.position, dtype=np.int64)[rand]
    clicks = np.asarray(log.clicked, dtype=np.float64)[rand]
    if len(pos) == 0:
        return None
    n_pos = int(pos.max()) + 1
    shown = np.bincount(pos, minlength=n_pos).astype(np.float64)
    clicked = np.bincount(pos, weights=clicks, minlength=n_pos)
    if shown[0] < min_slots or clicked[0] == 0:
        return None
    rate = clicked / np.maximum(shown, 1.0)
    eta = _power_law(rate / rate[0], shown)
    fitted = rate[0] * (np.arange(n_pos) + 1.0) ** -eta
    smoothed = (clicked + prior_slots * fitted) / (shown + prior_slots)
    theta = np.clip(smoothed / smoothed[0], MIN_THETA, 1.0)
    theta[0] = 1.0
    return PositionBias(theta=theta, exponent=eta, randomised_slots=int(rand.sum()))


def _power_law(relative: Array, shown: Array) -> float:
    """Least-squares ``eta`` in ``log theta_k = -eta log(k + 1)``, weighted by slots shown."""
    k = np.arange(len(relative))
    ok = (relative > 0) & (shown > 0) & (k > 0)
    if not ok.any():
        return 0.0
    x, y, w = np.log(k[ok] + 1.0), np.log(relative[ok]), shown[ok]
    return float(max(0.0, -(w * x * y).sum() / (w * x * x).sum()))


@dataclass(frozen=True)
class ClickModel:
    """``r(x) = exp(intercept + x @ coef)`` over named features, with the position bias."""

    names: tuple[str, ...]
    coef: Array
    intercept: float
    bias: PositionBias
    clicks: int

    def relevance(self, design: Array) -> Array:
        """Return the position-free click probability once seen, per row of ``design``."""
        return np.exp(np.clip(self.intercept + np.asarray(design) @ self.coef, -50.0, 50.0))

    def click_probability(self, design: Array, position: Array) -> Array:
        """Return ``theta[position] * r(x)``: the chance of a click in that position."""
        return self.bias.at(position) * self.relevance(design)

    def weights(self) -> dict[str, float]:
        """Return the learned weight of every feature by name."""
        return dict(zip(self.names, map(float, self.coef), strict=True))


def fit_click_model(
    design: Array,
    names: tuple[str, ...],
    log: ExposureLog,
    *,
    min_clicks: int = 100,
    min_randomised: int = 500,
    alpha: float = 1e-4,
    bias: PositionBias | None = None,
) -> ClickModel | None:
    """Fit ``r(x)`` on every logged slot with targets ``clicked / theta_position``.

    Returns None (keep the hybrid) with fewer than ``min_clicks`` clicks, fewer than
    ``min_randomised`` randomised slots, or no estimable position bias. Features are
    standardised for the fit; the returned weights are on the original scale.
    """
    clicked = np.asarray(log.clicked, dtype=np.float64)
    if clicked.sum() < min_clicks or int(np.sum(log.randomised)) < min_randomised:
        return None
    bias = bias or estimate_position_bias(log) or joint_position_bias(design, log, alpha=alpha)
    if bias is None:
        return None
    design = np.asarray(design, dtype=np.float64)
    mean, std = design.mean(axis=0), design.std(axis=0)
    std = np.where(std > 1e-12, std, 1.0)
    target = clicked / bias.at(log.position)
    weights, offset = poisson_regression((design - mean) / std, target, alpha=alpha)
    coef = weights / std
    intercept = offset - float(mean @ coef)
    return ClickModel(
        names=tuple(names), coef=coef, intercept=intercept, bias=bias, clicks=int(clicked.sum())
    )


def joint_position_bias(
    design: Array, log: ExposureLog, *, alpha: float = 1e-4, min_slots: int = 200
) -> PositionBias | None:
    """``theta_k`` fitted jointly with the appeal (see the module doc); positions with fewer
    than ``min_slots`` slots take the power law fitted to the others. None when position 0
    has fewer than ``min_slots`` slots."""
    position = np.asarray(log.position, dtype=np.int64)
    shown = np.bincount(position)
    if len(shown) == 0 or shown[0] < min_slots:
        return None
    known = np.flatnonzero(shown >= min_slots)
    known = known[known > 0]
    onehot = (position[:, None] == known[None, :]).astype(np.float64)
    x = np.asarray(design, dtype=np.float64)
    mean, std = x.mean(axis=0), x.std(axis=0)
    std = np.where(std > 1e-12, std, 1.0)
    penalty = np.r_[np.full(x.shape[1], alpha), np.zeros(len(known))]  # positions unshrunk
    weights, _ = poisson_regression(
        np.hstack([(x - mean) / std, onehot]),
        np.asarray(log.clicked, dtype=np.float64),
        alpha=penalty,
    )
    relative = np.ones(len(shown))
    relative[known] = np.exp(weights[x.shape[1] :])
    eta = _power_law(relative, np.where(np.isin(np.arange(len(shown)), known), shown, 0))
    theta = np.where(shown >= min_slots, relative, (np.arange(len(shown)) + 1.0) ** -eta)
    theta = np.clip(theta, MIN_THETA, 1.0)
    theta[0] = 1.0
    return PositionBias(theta=theta, exponent=eta, randomised_slots=int(np.sum(log.randomised)))


def poisson_regression(
    x: Array, y: Array, *, alpha: float | Array, iterations: int = 50
) -> tuple[Array, float]:
    """Minimise ``mean(exp(b + x w) - y (b + x w)) + sum(alpha / 2 w^2)`` by damped Newton
    steps (``alpha`` one value, or one per feature).

    Convex for any ``y >= 0`` (here clicks over propensities); returns ``(w, b)``. A few
    features and many rows: each step is one ``p x p`` solve, so this is exact and fast.
    """
    n, p = x.shape
    design = np.hstack([x, np.ones((n, 1))])
    beta = np.zeros(p + 1)
    beta[-1] = np.log(max(float(np.mean(y)), 1e-12))
    penalty = np.r_[np.broadcast_to(np.asarray(alpha, dtype=np.float64), (p,)), 0.0]

    def objective(b: Array) -> float:
        eta = np.clip(design @ b, -50.0, 50.0)
        return float(np.mean(np.exp(eta) - y * eta) + 0.5 * (penalty * b * b).sum())

    current = objective(beta)
    for _ in range(iterations):
        mu = np.exp(np.clip(design @ beta, -50.0, 50.0))
        grad = design.T @ (mu - y) / n + penalty * beta
        hess = (design * mu[:, None]).T @ design / n + np.diag(penalty + 1e-10)
        step = np.linalg.solve(hess, grad)
        scale = 1.0
        while scale > 1e-6:
            trial = beta - scale * step
            value = objective(trial)
            if value <= current:
                break
            scale /= 2
        beta, previous, current = trial, current, value
        if previous - current < 1e-12:
            break
    return beta[:p], float(beta[-1])
