"""Hybrid ranking features and the rankers that weigh them.

Features of a (user, item) pair, each in ``[0, 1]`` and computed for a whole batch at once:
``ease``, ``knn``, ``content``, ``fresh`` (each source's score divided by the user's best),
``popularity`` (log-scaled recency-weighted popularity), ``prior`` (metadata-predicted
popularity), ``recency`` (``0.5 ** (age / half-life)``) and ``sequence`` (sequential item-kNN:
what readers went on to read after the subscriber's latest reads). User activity (``log1p`` of the
history size) scales per-user weights in the logistic ranker.

* :class:`LinearRanker` -- calibrated default weights (``HybridConfig.blend``).
* :func:`fit_logistic_ranker` -- once logged feedback exists (slots shown, clicked or not), a
  logistic regression on the features and their products with user activity.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from sklearn.linear_model import LogisticRegression

from newsletter.recommend.base import Array

FEATURES = ("ease", "knn", "content", "fresh", "popularity", "prior", "recency", "sequence")
SOURCE_FEATURES = ("ease", "knn", "content", "fresh", "popularity", "prior", "sequence")


@dataclass(frozen=True)
class LinearRanker:
    """Score = sum over features of (weight + activity_weight * activity) * feature."""

    weights: Array
    activity_weights: Array
    learned: bool = False

    @classmethod
    def from_blend(cls, blend: Mapping[str, float]) -> LinearRanker:
        """Build the default ranker from a ``{feature: weight}`` mapping."""
        weights = np.array([float(blend.get(f, 0.0)) for f in FEATURES])
        return cls(weights=weights, activity_weights=np.zeros(len(FEATURES)))

    def user_weights(self, activity: Array) -> Array:
        """Return per-user feature weights, shape ``(len(activity), n_features)``."""
        return self.weights[None, :] + np.outer(activity, self.activity_weights)


def row_scale(scores: Array, mask: Array | None = None) -> Array:
    """Return ``1 / max`` of each row over ``mask`` (0 for rows without a positive max)."""
    if len(scores) == 0 or scores.shape[1] == 0 or (mask is not None and not mask.any()):
        return np.zeros(len(scores), dtype=np.float32)
    top = scores.max(axis=1) if mask is None or mask.all() else scores[:, mask].max(axis=1)
    return np.where(top > 0, 1.0 / np.where(top > 0, top, 1.0), 0.0).astype(np.float32)


def normalise_rows(scores: Array, mask: Array | None = None) -> Array:
    """Divide each row by its maximum over ``mask`` (rows without a positive max become 0).

    The result is clipped to ``[-1, 1]`` so a large negative score (EASE) cannot dominate.
    """
    out = np.array(scores, dtype=np.float32, copy=None)
    if not out.flags.writeable:
        out = out.copy()
    out *= row_scale(out, mask)[:, None]
    np.clip(out, -1.0, 1.0, out=out)
    return out


def pair_design(features: Mapping[str, Array], activity: Array) -> Array:
    """Stack per-pair features and their products with activity into a design matrix."""
    base = np.column_stack([features[f] for f in FEATURES])
    return np.hstack([base, base * activity[:, None]])


def fit_logistic_ranker(
    features: Mapping[str, Array], activity: Array, clicked: Array, *, c: float = 1.0
) -> LinearRanker | None:
    """Fit a logistic-regression ranker on logged slots; None when both classes are not seen."""
    clicked = np.asarray(clicked, dtype=bool)
    if clicked.all() or not clicked.any():
        return None
    design = pair_design(features, activity)
    model = LogisticRegression(C=c, max_iter=1000).fit(design, clicked)
    coef = model.coef_.ravel()
    n = len(FEATURES)
    return LinearRanker(weights=coef[:n], activity_weights=coef[n:], learned=True)
