"""Choose the hybrid's hyper-parameters on a validation split carved from the training input.

The test set is never seen here. :func:`validation_split` repeats the evaluation protocol
*inside* the training input (temporal: each user's last 20% of training positives; cold items:
a deterministic 10% of the engaged items become pseudo-cold), and :func:`tune` searches, one
coordinate at a time so the cost stays a few dozen fits:

1. collaborative: rating exponent ``value_power``, per-user half-life, EASE ``lambda``
   (scored by the collaborative generator alone);
2. content (cold-item protocol): topic vs text weight;
3. blend weights of every ranking feature, by coordinate ascent on cached feature blocks.

:func:`tune_baselines` gives the baselines the evaluation reports beside the hybrid (item-kNN,
iALS, SLIM) the same chance: each is tuned on the same validation split.

The defaults shipped in ``HybridConfig`` are what this procedure picks on MovieLens
(see ``benchmarks/README.md``); ``newsletter evaluate`` re-runs it on whatever data it is given.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from newsletter.recommend.base import (
    Array,
    InteractionData,
    ItemCatalog,
    mask_scores,
    top_n,
)
from newsletter.recommend.collaborative import EASE, ItemKNN, ItemModel
from newsletter.recommend.content import ContentModel
from newsletter.recommend.explore import hash01
from newsletter.recommend.factors import IALS, implicit_available
from newsletter.recommend.hybrid import HybridConfig, HybridRecommender
from newsletter.recommend.ranker import FEATURES
from newsletter.recommend.slim import SLIM
from newsletter.recommend.splits import Split, cold_item_split, ranking_metrics, temporal_split
from newsletter.recommend.weighting import WeightingConfig

# A change must beat the current choice by this much NDCG@10 to be taken: neighbouring grid
# points on the ~600-user MovieLens validation split differ by about this much at random.
MIN_GAIN = 5e-4

GRID: dict[str, tuple[Any, ...]] = {
    "value_power": (1.0, 2.0, 3.0, 4.0),
    "half_life_days": (None, 180.0, 720.0),
    "ease_lambda": (50.0, 100.0, 200.0, 400.0),
    "topic_weight": (0.5, 1.0, 2.0),
    "weight": (0.0, 0.02, 0.05, 0.1, 0.2, 0.4, 0.8, 1.5, 3.0),
}
# Baselines the evaluation reports beside the hybrid, each tuned on the same validation split
# (coordinate search from the first value of each grid).
BASELINE_GRIDS: dict[str, dict[str, tuple[Any, ...]]] = {
    "item-knn": {"shrink": (10.0, 20.0, 50.0), "k": (100, 200, 300, 500)},
    "ials": {"regularization": (1.0, 10.0, 30.0), "alpha": (1.0, 5.0), "factors": (32, 64, 128)},
    "slim": {"alpha": (0.03, 0.01, 0.1)},
}


@dataclass(frozen=True)
class TuneResult:
    """The chosen configuration, its validation NDCG@10 and every trial made."""

    config: HybridConfig
    validation_ndcg: float
    trials: list[tuple[str, float]] = field(default_factory=list)


def validation_split(data: InteractionData, *, protocol: str) -> Split:
    """Carve a validation split from training input with the same protocol as the test."""
    if protocol == "cold-items":
        engaged = np.zeros(data.n_items, dtype=bool)
        engaged[data.item_idx] = True
        idx = np.arange(data.n_items)
        pseudo_cold = engaged & (hash01(7, np.zeros_like(idx), idx) < 0.1)
        return cold_item_split(data, pseudo_cold)
    return temporal_split(data)


def split_ndcg(scores: Array, split: Split) -> float:
    """NDCG@10 of a dense (validation users x items) score block on a split."""
    block = mask_scores(
        np.asarray(scores, dtype=np.float64),
        split.users,
        exclude=split.exclude,
        candidates=split.candidates,
    )
    recs, _ = top_n(block, 10)
    return ranking_metrics(recs, split.test, split.users)["ndcg@10"]


def _features(config: HybridConfig, split: Split, catalog: ItemCatalog) -> dict[str, Array]:
    """Fit the hybrid on the validation training input and return its feature blocks."""
    now = float(split.train.timestamp.max())
    model = HybridRecommender(config).fit(split.train, catalog, now=now)
    return {k: np.asarray(v) for k, v in model.features(split.users).items()}


def _collab_trial(config: HybridConfig, split: Split, catalog: ItemCatalog) -> float:
    """Validation NDCG of the collaborative generator alone under ``config``."""
    now = float(split.train.timestamp.max())
    model: ItemModel = EASE(
        lam=config.ease_lambda, max_items=config.ease_max_items, weighting=config.weighting
    )
    if split.train.n_items > config.ease_max_catalogue:
        model = ItemKNN(k=config.knn_k, shrink=config.knn_shrink, weighting=config.weighting)
    model.fit(split.train, catalog, now=now)
    return split_ndcg(model.score(split.users), split)


def _tune_collaborative(
    config: HybridConfig, split: Split, catalog: ItemCatalog, trials: list[tuple[str, float]]
) -> HybridConfig:
    """Coordinate search over rating exponent, half-life and EASE lambda."""
    best_score = -1.0
    for name in ("value_power", "half_life_days", "ease_lambda"):
        best_value = _get(config, name)
        for value in GRID[name]:
            candidate = _set(config, name, value)
            score = _collab_trial(candidate, split, catalog)
            trials.append((f"{name}={value}", score))
            if score > best_score + 1e-4:
                best_score, best_value = score, value
        config = _set(config, name, best_value)
    return config


def _get(config: HybridConfig, name: str) -> Any:
    """Read a tunable value (weighting fields live in ``config.weighting``)."""
    if name in ("value_power", "half_life_days"):
        return getattr(config.weighting, name)
    return getattr(config, name)


def _set(config: HybridConfig, name: str, value: Any) -> HybridConfig:
    """Return ``config`` with one tunable value replaced."""
    if name in ("value_power", "half_life_days"):
        weighting = replace(config.weighting, **{name: value, "decay_from": "user"})
        return replace(config, weighting=weighting)
    return replace(config, **{name: value})


def tune_blend(
    feats: dict[str, Array], split: Split, start: dict[str, float], trials: list[tuple[str, float]]
) -> tuple[dict[str, float], float]:
    """Coordinate ascent on feature weights (two sweeps) over cached feature blocks."""
    weights = dict(start)
    anchor = max(weights, key=lambda k: weights[k])

    def score(w: dict[str, float]) -> float:
        total = sum(v * feats[k] for k, v in w.items() if v)
        return split_ndcg(np.asarray(total), split)

    best = score(weights)
    for _ in range(2):
        for name in FEATURES:
            if name == anchor or not np.any(feats[name]):
                continue
            for value in GRID["weight"]:
                trial = weights | {name: value}
                result = score(trial)
                trials.append((f"blend.{name}={value}", result))
                if result > best + MIN_GAIN:
                    best, weights = result, trial
    return weights, best


def tune(
    data: InteractionData,
    catalog: ItemCatalog,
    *,
    protocol: str,
    base: HybridConfig | None = None,
    catalog_for: Callable[[Split], ItemCatalog] | None = None,
) -> TuneResult:
    """Pick hyper-parameters on a validation split of ``data`` (the training input only).

    ``catalog_for(validation_split)`` returns the catalogue a model may see on that split
    when its text is time-stamped behaviour (MovieLens tags cut at the validation cut);
    without it ``catalog`` is used as given.
    """
    config = base or HybridConfig()
    split = validation_split(data, protocol=protocol)
    trials: list[tuple[str, float]] = []
    if len(split.users) == 0:
        return TuneResult(config=config, validation_ndcg=float("nan"), trials=trials)
    if catalog_for is not None:
        catalog = catalog_for(split)
    if protocol == "cold-items":
        config = _tune_content(config, split, catalog, trials)
        start = {"content": 1.0}
    else:
        config = _tune_collaborative(config, split, catalog, trials)
        start = {"ease": 1.0} if len(data.user_idx) else {"popularity": 1.0}
    full = replace(config, blend=dict.fromkeys(FEATURES, 1.0))
    feats = _features(full, split, catalog)
    if not np.any(feats["ease"]):
        start = {"knn": 1.0} if "ease" in start else start
    weights, best = tune_blend(feats, split, start, trials)
    blend = {k: float(weights.get(k, 0.0)) for k in FEATURES}
    return TuneResult(config=replace(config, blend=blend), validation_ndcg=best, trials=trials)


def _tune_content(
    config: HybridConfig, split: Split, catalog: ItemCatalog, trials: list[tuple[str, float]]
) -> HybridConfig:
    """Pick the topic weight and rating exponent for content profiles on pseudo-cold items."""
    best_score, best = -1.0, config
    for power in (1.0, 3.0):
        for topic_weight in GRID["topic_weight"]:
            candidate = replace(
                config,
                topic_weight=topic_weight,
                weighting=replace(config.weighting, value_power=power),
            )
            model = ContentModel(
                text_weight=candidate.text_weight,
                topic_weight=topic_weight,
                weighting=candidate.weighting,
            ).fit(split.train, catalog, now=float(split.train.timestamp.max()))
            score = split_ndcg(model.score(split.users), split)
            trials.append((f"value_power={power},topic_weight={topic_weight}", score))
            if score > best_score + 1e-4:
                best_score, best = score, candidate
    return best


def tune_baselines(
    data: InteractionData,
    catalog: ItemCatalog,
    *,
    protocol: str,
    weighting: WeightingConfig,
    names: Collection[str] = ("item-knn", "ials", "slim"),
    catalog_for: Callable[[Split], ItemCatalog] | None = None,
) -> dict[str, dict[str, Any]]:
    """Pick each baseline's hyper-parameters on the validation split (coordinate search).

    Returns ``{name: {parameter: value, ..., "validation_ndcg@10": score}}``; baselines whose
    package is missing (``ials`` without ``implicit``) are left out.
    """
    split = validation_split(data, protocol=protocol)
    if len(split.users) == 0:
        return {}
    if catalog_for is not None:
        catalog = catalog_for(split)
    now = float(split.train.timestamp.max())
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        if name == "ials" and not implicit_available():
            continue
        grid = BASELINE_GRIDS[name]
        params = {key: values[0] for key, values in grid.items()}
        best = -1.0
        for key, values in grid.items():
            for value in values:
                trial = params | {key: value}
                model = baseline(name, trial, weighting).fit(split.train, catalog, now=now)
                score = split_ndcg(model.score(split.users), split)
                if score > best + 1e-4:
                    best, params = score, trial
        out[name] = params | {"validation_ndcg@10": best}
    return out


def baseline(
    name: str, params: dict[str, Any], weighting: WeightingConfig
) -> ItemKNN | IALS | SLIM:
    """Build one baseline from its tuned parameters."""
    kwargs = {k: v for k, v in params.items() if k != "validation_ndcg@10"}
    if name == "item-knn":
        return ItemKNN(weighting=weighting, **kwargs)
    if name == "ials":
        return IALS(weighting=weighting, **kwargs)
    if name == "slim":
        return SLIM(weighting=weighting, **kwargs)
    raise ValueError(f"unknown baseline {name!r}: choose one of {sorted(BASELINE_GRIDS)}")
