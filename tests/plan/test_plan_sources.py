"""The campaign's item-age and popularity settings reach the hybrid the planner fits."""

from __future__ import annotations

import sys
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from newsletter.plan.campaigns import CampaignConfigError, parse_campaign_config
from newsletter.plan.sources import base_hybrid_config, default_slot_source
from newsletter.recommend.calibrate import choose_popularity_weight
from newsletter.recommend.hybrid import HybridRecommender
from newsletter.store.matrices import Matrices

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "recommend"))
from recommend_world import NOW, block_world, clustered_log


def matrices(world: tuple | None = None) -> Matrices:
    """A recommender tests' world (the block world) as the store would hand it over."""
    data, catalog = world or block_world()
    return Matrices(
        data=data,
        catalog=catalog,
        subscriber_ids=np.arange(data.n_users),
        item_ids=np.arange(data.n_items),
    )


@pytest.mark.parametrize(
    ("raw", "expected"), [({}, float("inf")), ({"item_age_half_life_days": 5}, 5.0)]
)
def test_item_age_half_life_is_configured_per_campaign(raw: dict, expected: float) -> None:
    """By default ("auto") it is estimated (no decay in this world); a number is used as is."""
    config = parse_campaign_config(raw, campaign="weekly")
    parts = default_slot_source(matrices(), config, datetime.fromtimestamp(NOW, UTC))
    model = parts.source.ranker  # type: ignore[attr-defined]
    assert model.config.age_half_life_days == raw.get("item_age_half_life_days", "auto")
    assert model.age_half_life == expected


def test_bad_item_age_half_life_names_the_key() -> None:
    """A negative or non-numeric value is a one-line error naming the key and campaign."""
    for bad in (-1, "soon"):
        with pytest.raises(CampaignConfigError, match=r"weekly.*item_age_half_life_days"):
            parse_campaign_config({"item_age_half_life_days": bad}, campaign="weekly")


@pytest.mark.parametrize(("raw", "expected"), [({}, 0.0), ({"popularity_weight": 0.7}, 0.7)])
def test_popularity_weight_is_configured_per_campaign(raw: dict, expected: float) -> None:
    """A number is used as is; "auto" (the default) keeps the blend's weight when the last
    week holds too few subscribers to judge (the block world has no events in it)."""
    config = parse_campaign_config(raw, campaign="weekly")
    parts = default_slot_source(matrices(), config, datetime.fromtimestamp(NOW, UTC))
    model = parts.source.ranker  # type: ignore[attr-defined]
    assert model.config.blend["popularity"] == expected


def test_an_auto_weight_chosen_beside_the_fit_gives_the_model_fitted_with_that_weight() -> None:
    """ "auto" is chosen in a thread while the model is fitted without it, then applied: the
    slot source's model scores every subscriber exactly as a model fitted with that weight."""
    data, catalog = clustered_log(taste=1.0, quality_power=0.5)  # bestsellers drive clicks
    config = parse_campaign_config({}, campaign="weekly")
    parts = default_slot_source(matrices((data, catalog)), config, datetime.fromtimestamp(NOW, UTC))
    model = parts.source.ranker  # type: ignore[attr-defined]
    base = base_hybrid_config(config)
    chosen = choose_popularity_weight(base, data, catalog, now=NOW, n=config.n_items).weight
    assert chosen >= 0.8
    assert model.config.blend["popularity"] == chosen
    fitted = HybridRecommender(replace(base, blend={**base.blend, "popularity": chosen}))
    fitted.fit(data, catalog, now=NOW)
    users = np.arange(data.n_users)
    np.testing.assert_array_equal(model.blend(users).total, fitted.blend(users).total)
    for got, want in zip(model.recommend(users, 8), fitted.recommend(users, 8), strict=True):
        np.testing.assert_array_equal(got, want)


def test_bad_popularity_weight_names_the_key() -> None:
    for bad in (-0.5, "lots"):
        with pytest.raises(CampaignConfigError, match=r"weekly.*popularity_weight"):
            parse_campaign_config({"popularity_weight": bad}, campaign="weekly")
