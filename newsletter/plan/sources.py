"""Build the slot source a run uses, and the inputs of the exploration policy.

:func:`default_slot_source` fits the hybrid recommender (``newsletter.recommend.hybrid``)
and wraps it in a :class:`~newsletter.plan.slots.ModelSlotSource`: top picks and fresh items
from the hybrid, "Because you read" anchors from its collaborative generator, trending and the
holdout from its popularity generator. :func:`collaborative_slot_source` is the lighter
alternative (a collaborative model plus popularity), :func:`popularity_slot_source` the
fallback without a model; a campaign picks one with ``ranker`` in its config.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import scipy.sparse as sp

from newsletter.plan.campaigns import CampaignConfig
from newsletter.plan.exploration import prior_means
from newsletter.plan.slots import ModelSlotSource, SlotSource, history_matrix
from newsletter.recommend.base import DAY
from newsletter.recommend.popular import Popularity
from newsletter.store.matrices import Matrices

if TYPE_CHECKING:
    from newsletter.recommend.hybrid import HybridConfig, HybridRecommender

Array = np.ndarray
T = TypeVar("T")
# EASE inverts an items x items matrix (cubic): above this catalogue size the planner's
# collaborative source uses sparse item kNN, which fits in seconds.
EASE_MAX_ITEMS = 2000
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SourceParts:
    """A fitted slot source and the consumed-items matrix it excludes."""

    source: SlotSource
    history: sp.csr_matrix


@dataclass(frozen=True)
class ExplorationInputs:
    """What the Thompson bank is drawn from (pool arrays aligned) and every item's mean."""

    pool: Array
    clicks: Array
    exposures: Array
    prior_mean: Array
    prior_strength: float
    means: Array  # posterior mean CTR of every catalogue item


def _history(m: Matrices) -> sp.csr_matrix:
    d = m.data
    return history_matrix(d.n_users, d.n_items, d.user_idx, d.item_idx)


def collaborative_slot_source(m: Matrices, config: CampaignConfig, now: datetime) -> SourceParts:
    """Collaborative ranker (EASE or item kNN by catalogue size) plus popularity."""
    from newsletter.recommend.collaborative import collaborative_for

    seconds = now.timestamp()
    ranker = collaborative_for(m.data.n_items, ease_max_items=EASE_MAX_ITEMS)
    ranker.fit(m.data, m.catalog, now=seconds)
    popularity = Popularity().fit(m.data, m.catalog, now=seconds)
    history = _history(m)
    source = ModelSlotSource(
        ranker=ranker,
        popularity=popularity,
        catalog=m.catalog,
        history=history,
        user_topics=[list(t) for t in (m.data.user_topics or [])],
        now=seconds,
        fresh_days=config.fresh_days,
    )
    return SourceParts(source, history)


def default_slot_source(m: Matrices, config: CampaignConfig, now: datetime) -> SourceParts:
    """The hybrid recommender behind every section (see the module docstring).

    With ``popularity_weight = "auto"`` the weight is chosen (:func:`choose_weight`) in a
    thread while the model is fitted: the fit does not depend on the weight, and both spend
    most of their time in numpy and scipy, which let go of the interpreter lock, so the
    choice costs little wall time. The model is the one a fit with the chosen weight makes.
    """
    from newsletter.recommend.hybrid import HybridRecommender

    seconds = now.timestamp()
    base = base_hybrid_config(config)
    model, weight = _fit_beside_weight(
        lambda: HybridRecommender(base).fit(m.data, m.catalog, now=seconds),
        base,
        m,
        config,
        seconds,
    )
    model.reweight({**base.blend, "popularity": weight})
    return _hybrid_parts(model, model, m, config, seconds)


def clicks_slot_source(m: Matrices, config: CampaignConfig, now: datetime) -> SourceParts:
    """The hybrid's candidates re-ranked by what the emails' readers clicked.

    A click model (``recommend.clickrank.ClickRanker``) is learned from ``m.exposures``, the
    campaign's sent slots and their human clicks, over the candidates of a hybrid with the
    popularity weight the hybrid source would choose (chosen the same way, beside the fit);
    with too little feedback (no log, too few clicks or randomised slots) this is exactly
    :func:`default_slot_source`.
    """
    from newsletter.recommend.clickrank import ClickRanker

    log_ = m.exposures
    if log_ is None or int(np.sum(log_.clicked)) < ClickRanker().min_clicks:
        return default_slot_source(m, config, now)
    seconds = now.timestamp()
    base = base_hybrid_config(config)
    ranker, weight = _fit_beside_weight(
        lambda: ClickRanker(base).fit(m.data, m.catalog, now=seconds, log=log_),
        base,
        m,
        config,
        seconds,
    )
    blend = {**base.blend, "popularity": weight}
    ranker.hybrid.reweight(blend)  # the candidates' order; the click features do not use it
    ranker.config = replace(base, blend=blend)
    if ranker.model is None:
        log.info("click model not learned (too little feedback): the hybrid ranks")
    else:
        log.info("click model from %d clicks: %s", ranker.model.clicks, ranker.model.weights())
    return _hybrid_parts(ranker, ranker.hybrid, m, config, seconds)


def _fit_beside_weight(
    fit: Callable[[], T], base: HybridConfig, m: Matrices, config: CampaignConfig, seconds: float
) -> tuple[T, float]:
    """``fit()``, with the popularity weight chosen in a thread meanwhile when it is "auto"."""
    auto = config.popularity_weight == "auto"
    with ThreadPoolExecutor(1, thread_name_prefix="calibrate") as pool:
        chosen = pool.submit(choose_weight, base, m, config, seconds) if auto else None
        fitted = fit()
    return fitted, chosen.result() if chosen is not None else float(config.popularity_weight)


def _hybrid_parts(
    ranker: Any, model: HybridRecommender, m: Matrices, config: CampaignConfig, seconds: float
) -> SourceParts:
    """The slot source over ``ranker``, with the fitted hybrid's generators behind it."""
    machine = m.data.machine
    # Without machine events every event is human: the model's consumed matrix is the history.
    history = model.consumed if machine is None or not np.any(machine) else _history(m)
    gens = model.generators
    source = ModelSlotSource(
        ranker=ranker,
        popularity=gens["popularity"],
        catalog=m.catalog,
        history=history,
        user_topics=[list(t) for t in (m.data.user_topics or [])],
        now=seconds,
        fresh_days=config.fresh_days,
        anchor_model=gens.get("ease") or gens.get("knn"),
        age_decay=model.age_decay,
    )
    return SourceParts(source, history)


def base_hybrid_config(config: CampaignConfig) -> HybridConfig:
    """The hybrid's configuration for a campaign, before its popularity weight is set."""
    from newsletter.recommend.hybrid import HybridConfig

    return HybridConfig(
        fresh_days=config.fresh_days, age_half_life_days=config.item_age_half_life_days
    )


def choose_weight(base: HybridConfig, m: Matrices, config: CampaignConfig, seconds: float) -> float:
    """The popularity weight chosen on the campaign's recent data (``recommend.calibrate``)."""
    from newsletter.recommend.calibrate import choose_popularity_weight

    choice = choose_popularity_weight(base, m.data, m.catalog, now=seconds, n=config.n_items)
    log.info("popularity weight %s (hits per weight %s)", choice.weight, choice.hits)
    return choice.weight


def exploration_inputs(
    m: Matrices,
    config: CampaignConfig,
    *,
    now: datetime,
    exposures: dict[int, int],
    clicks: dict[int, int],
) -> ExplorationInputs:
    """The exploration pool (fresh or rarely shown live items), its clicks, exposures and
    prior (the campaign's click-through scaled by site popularity), and the posterior mean
    CTR of every catalogue item."""
    shown = np.array([exposures.get(int(i), 0) for i in m.item_ids], dtype=np.float64)
    clicked = np.minimum([clicks.get(int(i), 0) for i in m.item_ids], shown)
    seconds = now.timestamp()
    cat = m.catalog
    live = np.ones(cat.n_items, bool) if cat.active is None else np.asarray(cat.active, bool)
    if cat.expires_at is not None:
        live &= np.asarray(cat.expires_at, dtype=np.float64) > seconds
    published = np.asarray(cat.published_at, dtype=np.float64)
    fresh = (published >= seconds - config.fresh_days * DAY) & (published <= seconds)
    pool = np.flatnonzero(live & (fresh | (shown < config.explore_max_exposures)))
    popularity = Popularity().fit(m.data, cat, now=seconds).item_scores
    prior, strength = prior_means(popularity, clicks=clicked.sum(), exposures=shown.sum())
    means = (strength * prior + clicked) / (strength + shown)
    return ExplorationInputs(pool, clicked[pool], shown[pool], prior[pool], strength, means)


def popularity_slot_source(m: Matrices, config: CampaignConfig, now: datetime) -> SourceParts:
    """Every section from the popularity ranking: the fallback without a trained model."""
    seconds = now.timestamp()
    popularity = Popularity().fit(m.data, m.catalog, now=seconds)
    history = _history(m)
    source = ModelSlotSource(
        ranker=popularity,
        popularity=popularity,
        catalog=m.catalog,
        history=history,
        user_topics=[list(t) for t in (m.data.user_topics or [])],
        now=seconds,
        fresh_days=config.fresh_days,
    )
    return SourceParts(source, history)


FACTORIES = {
    "hybrid": default_slot_source,
    "clicks": clicks_slot_source,
    "collaborative": collaborative_slot_source,
    "popularity": popularity_slot_source,
}
