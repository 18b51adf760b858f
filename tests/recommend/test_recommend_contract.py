"""Every generator honours the same Recommender contract on the same synthetic data."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from recommend_world import NOW, world

from newsletter.recommend import artifact
from newsletter.recommend.base import InteractionData, ItemCatalog, Recommender
from newsletter.recommend.clickrank import ClickRanker
from newsletter.recommend.collaborative import EASE, ItemKNN
from newsletter.recommend.content import ContentModel, Fresh
from newsletter.recommend.factors import IALS
from newsletter.recommend.freshness import FreshItems
from newsletter.recommend.hybrid import HybridConfig, HybridRecommender
from newsletter.recommend.popular import MetadataPrior, Popularity
from newsletter.recommend.sequential import SequentialKNN
from newsletter.recommend.slim import SLIM
from newsletter.recommend.weighting import consumed_matrix

__all__ = ["world"]

FACTORIES = {
    "popularity": lambda: Popularity(),
    "prior": lambda: MetadataPrior(),
    "item-knn": lambda: ItemKNN(k=5),
    "ease": lambda: EASE(lam=1.0),
    "content": lambda: ContentModel(),
    "fresh": lambda: Fresh(days=30),
    "hybrid": lambda: HybridRecommender(HybridConfig(exclude_consumed=False)),
    "hybrid-diverse": lambda: HybridRecommender(
        HybridConfig(mmr_lambda=0.5, topic_cap=2, explore_slots=1, explore_pool=4)
    ),
    "hybrid-aged": lambda: HybridRecommender(
        HybridConfig(age_half_life_days=10.0, blend={"ease": 1.0, "fresh": 0.5, "sequence": 1.0})
    ),
    "sequence": lambda: SequentialKNN(window=3),
    "fresh-items": lambda: FreshItems(days=30),
    "slim": lambda: SLIM(alpha=1e-3),
    "ials": lambda: IALS(factors=4, iterations=5),
    "click-ranker": lambda: ClickRanker(pool=10),
}


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_generator_contract(name: str, world: tuple[InteractionData, ItemCatalog]) -> None:
    """Shapes, exclusions honoured, scores sorted descending, no duplicates, -1 padding."""
    data, catalog = world
    model = FACTORIES[name]().fit(data, catalog, now=NOW)
    assert isinstance(model, Recommender)
    users = np.arange(data.n_users)
    exclude = consumed_matrix(data)
    n = 8
    items, scores = model.recommend(users, n, exclude=exclude)
    assert items.shape == (len(users), n) and scores.shape == (len(users), n)
    for row_items, row_scores, user in zip(items, scores, users, strict=True):
        real = row_items[row_items >= 0]
        assert len(set(real.tolist())) == len(real), "duplicate items"
        assert not set(real.tolist()) & set(exclude[user].indices.tolist()), "excluded item"
        assert np.all(row_items[len(real) :] == -1), "padding must come last"
        finite = row_scores[: len(real)]
        if "diverse" not in name:
            assert np.all(np.diff(finite) <= 1e-9), "scores must be sorted descending"
        assert np.all(np.isneginf(row_scores[len(real) :]))


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_candidates_mask_is_honoured(name: str, world: tuple[InteractionData, ItemCatalog]) -> None:
    """Only items in the candidates mask are ever returned."""
    data, catalog = world
    model = FACTORIES[name]().fit(data, catalog, now=NOW)
    allowed = np.zeros(data.n_items, dtype=bool)
    allowed[[3, 12, 20]] = True
    items, _ = model.recommend(
        np.arange(data.n_users), 5, exclude=sp.csr_matrix((22, 21)), candidates=allowed
    )
    assert set(items[items >= 0].tolist()) <= {3, 12, 20}


def test_large_catalogue_path_keeps_the_contract(
    world: tuple[InteractionData, ItemCatalog], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sparse path (kNN instead of EASE, content neighbours) honours the same contract."""
    import newsletter.recommend.content as content_module

    monkeypatch.setattr(content_module, "EXACT_WORK_LIMIT", 0.0)
    data, catalog = world
    model = HybridRecommender(HybridConfig(ease_max_catalogue=0)).fit(data, catalog, now=NOW)
    assert "ease" not in model.generators
    assert model.generators["content"].neighbours is not None
    exclude = consumed_matrix(data)
    recs = model.recommend_explained(np.arange(20), 4, exclude=exclude)
    for user, row in enumerate(recs.items):
        assert len(set(row.tolist())) == 4
        assert not set(row.tolist()) & set(exclude[user].indices.tolist())
        block = range(10) if user < 10 else range(10, 20)
        assert row[0] in block
    assert {s for row in recs.sources for s in row} <= {"collaborative", "content", "popularity"}


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_save_load_round_trip_recommends_the_same(
    name: str, world: tuple[InteractionData, ItemCatalog]
) -> None:
    """A fitted model shipped as an artifact (to a worker) recommends exactly as before."""
    data, catalog = world
    model = FACTORIES[name]().fit(data, catalog, now=NOW)
    blob = artifact.dumps(model)
    loaded = artifact.loads(blob)
    assert type(loaded) is type(model) and loaded is not model
    users, exclude = np.arange(data.n_users), consumed_matrix(data)
    even = np.arange(data.n_items) % 2 == 0
    for kwargs in ({"exclude": exclude}, {"exclude": exclude, "candidates": even}):
        items, scores = model.recommend(users, 8, **kwargs)
        again, again_scores = loaded.recommend(users, 8, **kwargs)
        np.testing.assert_array_equal(again, items)
        np.testing.assert_array_equal(again_scores, scores)
    if hasattr(model, "recommend_explained"):
        before = model.recommend_explained(users, 4, exclude=exclude)
        after = loaded.recommend_explained(users, 4, exclude=exclude)
        np.testing.assert_array_equal(after.items, before.items)
        assert after.reasons == before.reasons


def test_artifact_refuses_other_formats_with_a_clear_error() -> None:
    blob = artifact.dumps(Popularity())
    with pytest.raises(artifact.ArtifactError, match="missing the NLMODEL header"):
        artifact.loads(b"\x80\x05junk")
    header = len(artifact.MAGIC)
    newer = blob[:header] + bytes([artifact.FORMAT + 1]) + blob[header + 1 :]
    with pytest.raises(artifact.ArtifactError, match=f"format {artifact.FORMAT + 1}"):
        artifact.loads(newer)
