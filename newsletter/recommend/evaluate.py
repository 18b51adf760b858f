"""Offline evaluation on MovieLens-format folders: the ``newsletter evaluate`` command's engine.

``evaluate(data_dir=..., protocol="temporal-20" | "cold-items")`` reads ratings.csv, movies.csv
and tags.csv (the only I/O in ``recommend/``, in :func:`load_movielens`), splits them with the
protocol from ``splits.py``, tunes the hybrid on a validation split carved from the training
input only (``tune.py``), fits every model on the training input and reports NDCG@10,
Recall@10, MAP@10, catalogue coverage and mean intra-list diversity per model.

:func:`evaluate_aging` runs the ``aging`` protocol (``splits.aging_split``) on any behaviour
log and catalogue, such as a simulated world's (``newsletter evaluate --world news``): it
reports the same metrics plus ``fresh_share``, the share of recommended items published
less than ``horizon`` before the ranking time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from newsletter.recommend.base import DAY, Array, InteractionData, ItemCatalog, ScoringModel
from newsletter.recommend.collaborative import EASE
from newsletter.recommend.content import ContentModel, Fresh, item_vectors
from newsletter.recommend.hybrid import HybridConfig, HybridRecommender
from newsletter.recommend.popular import MetadataPrior, Popularity
from newsletter.recommend.sequential import SequentialKNN
from newsletter.recommend.splits import (
    SideEvents,
    Split,
    aging_split,
    cold_item_split,
    ranking_metrics,
    temporal_split,
)
from newsletter.recommend.tune import baseline, tune, tune_baselines
from newsletter.recommend.weighting import WeightingConfig

PROTOCOLS = ("temporal-20", "cold-items", "aging")
YEAR = re.compile(r"\((\d{4})\)\s*$")


class DataError(ValueError):
    """A MovieLens folder is missing or malformed (message names the file and the fix)."""


@dataclass(frozen=True)
class MovieLens:
    """MovieLens ratings as InteractionData, the publish-time catalogue, tags and movie ids.

    ``catalog`` holds what is known about a movie without anyone's behaviour (title, genres,
    release year); ``tags`` are behaviour (who tagged what, when): :meth:`catalog_for` adds the
    tags a split lets a model see to the catalogue text.
    """

    data: InteractionData
    catalog: ItemCatalog
    movie_ids: Array
    tags: SideEvents

    def catalog_for(self, *, cut: Array | None = None, hidden: Array | None = None) -> ItemCatalog:
        """Return the catalogue with the tags written before each writer's cut, none on hidden."""
        cut = np.full(self.data.n_users, np.inf) if cut is None else cut
        hidden = np.zeros(self.data.n_items, dtype=bool) if hidden is None else hidden
        mask = self.tags.visible(cut=cut, hidden=hidden)
        return replace(self.catalog, texts=self.tags.text_per_item(self.data.n_items, mask))

    def catalog_for_split(self, split: Split) -> ItemCatalog:
        """Return the catalogue a model trained on ``split`` may see (tags cut by its rule)."""
        return self.catalog_for(cut=split.user_cut(), hidden=split.hidden_items())


def load_movielens(data_dir: Path) -> MovieLens:
    """Read ratings.csv, movies.csv and tags.csv (optional) into index-based structures."""
    for name in ("ratings.csv", "movies.csv"):
        if not (data_dir / name).is_file():
            raise DataError(f"{data_dir / name} not found: point --data at a MovieLens folder")
    ratings = pd.read_csv(data_dir / "ratings.csv")
    movies = pd.read_csv(data_dir / "movies.csv")
    tags_path = data_dir / "tags.csv"
    columns = ["userId", "movieId", "tag", "timestamp"]
    tags = pd.read_csv(tags_path) if tags_path.is_file() else pd.DataFrame(columns=columns)
    missing = [c for c in columns if c not in tags.columns]
    if missing:
        raise DataError(f"{tags_path} lacks column(s) {', '.join(missing)}: expected {columns}")
    movie_ids = np.union1d(movies["movieId"].to_numpy(), ratings["movieId"].to_numpy())
    users, user_idx = np.unique(ratings["userId"].to_numpy(), return_inverse=True)
    item_idx = np.searchsorted(movie_ids, ratings["movieId"].to_numpy())
    data = InteractionData(
        n_users=len(users),
        n_items=len(movie_ids),
        user_idx=user_idx.astype(np.int64),
        item_idx=item_idx.astype(np.int64),
        kind=np.full(len(ratings), "rating"),
        timestamp=ratings["timestamp"].to_numpy(dtype=np.float64),
        value=ratings["rating"].to_numpy(dtype=np.float64),
    )
    return MovieLens(
        data=data,
        catalog=_catalog(movies, movie_ids),
        movie_ids=movie_ids,
        tags=_tag_events(tags, users, movie_ids),
    )


def _tag_events(tags: pd.DataFrame, users: Array, movie_ids: Array) -> SideEvents:
    """Map tag rows to user and item indices (tags on unknown movies are dropped)."""
    tag_movies = tags["movieId"].to_numpy(dtype=np.int64)
    known = np.isin(tag_movies, movie_ids)
    tags = tags[known]
    tag_users = tags["userId"].to_numpy(dtype=np.int64)
    pos = np.searchsorted(users, tag_users)
    found = (pos < len(users)) & (users[np.minimum(pos, len(users) - 1)] == tag_users)
    return SideEvents(
        user_idx=np.where(found, pos, -1).astype(np.int64),
        item_idx=np.searchsorted(movie_ids, tag_movies[known]).astype(np.int64),
        timestamp=tags["timestamp"].to_numpy(dtype=np.float64),
        text=tags["tag"].astype(str).to_numpy(dtype=object),
    )


def _catalog(movies: pd.DataFrame, movie_ids: Array) -> ItemCatalog:
    """Build the publish-time catalogue: title, genres as topics, release year as date."""
    by_id = movies.set_index("movieId")
    titles, topics, published = [], [], []
    for mid in movie_ids:
        title = str(by_id["title"].get(mid, "")) if mid in by_id.index else ""
        genres = str(by_id["genres"].get(mid, "")) if mid in by_id.index else ""
        match = YEAR.search(title)
        year = int(match.group(1)) if match else 1995
        titles.append(YEAR.sub("", title).strip())
        topics.append([g for g in genres.split("|") if g and g != "(no genres listed)"])
        published.append(datetime(year, 1, 1, tzinfo=UTC).timestamp())
    return ItemCatalog(
        titles=titles,
        texts=[""] * len(titles),
        topics=topics,
        published_at=np.asarray(published),
    )


def make_split(ml: MovieLens, protocol: str, *, fold: int = 0) -> Split:
    """Apply the named protocol to the loaded data; ``fold`` picks another split of it.

    temporal-20, fold f: first drop each user's last 20% of positives f times over (as the
    protocol would hold them out), then hold out the last 20% of what remains -- a test set,
    and a validation set inside it, that fold 0's tuning and test never looked at.
    cold-items, fold f: the cold items are the rated movies with ``movieId % 10 == (7 + f) % 10``.
    """
    if fold < 0:
        raise DataError(f"fold {fold} is negative: use 0 (the standard split) or more")
    if protocol == "temporal-20":
        data, cut = ml.data, np.full(ml.data.n_users, np.inf)
        for _ in range(fold):
            earlier = temporal_split(data)
            data, cut = earlier.train, np.minimum(cut, earlier.user_cut())
        split = temporal_split(data)
        return replace(split, cut=np.minimum(cut, split.user_cut()))
    if protocol == "aging":
        raise DataError("the aging protocol needs a catalogue that ages: use --world, not --data")
    if protocol == "cold-items":
        rated = np.zeros(ml.data.n_items, dtype=bool)
        rated[ml.data.item_idx] = True
        return cold_item_split(ml.data, rated & (ml.movie_ids % 10 == (7 + fold) % 10))
    raise DataError(f"unknown protocol {protocol!r}: choose one of {', '.join(PROTOCOLS)}")


def score_model(
    model: ScoringModel | HybridRecommender,
    split: Split,
    *,
    vectors: sp.csr_matrix,
    k: int = 10,
    young: Array | None = None,
) -> dict[str, float]:
    """Rank for every evaluated user and compute the metrics, coverage and diversity (and,
    given the mask of ``young`` items, the share of recommended items that are young)."""
    recs, _ = model.recommend(split.users, k, exclude=split.exclude, candidates=split.candidates)
    metrics = ranking_metrics(recs, split.test, split.users, k=k)
    shown = np.unique(recs[recs >= 0])
    metrics["coverage"] = float(len(shown) / max(int(split.candidates.sum()), 1))
    metrics["diversity"] = intra_list_diversity(recs, vectors)
    if young is not None:
        sent = recs[recs >= 0]
        metrics["fresh_share"] = float(young[sent].mean()) if len(sent) else 0.0
    return metrics


def intra_list_diversity(recs: Array, vectors: sp.csr_matrix) -> float:
    """Mean pairwise (1 - cosine) between the content vectors of each list's items."""
    values = []
    for row in recs:
        row = row[row >= 0]
        if len(row) < 2:
            continue
        sim = (vectors[row] @ vectors[row].T).toarray()
        n = len(row)
        values.append(float((n * n - sim.sum()) / (n * (n - 1))))
    return float(np.mean(values)) if values else 0.0


def evaluation_models(
    config: HybridConfig, baselines: dict[str, dict[str, Any]] | None = None
) -> dict[str, Any]:
    """Return popularity, the tuned baselines, every generator alone and the hybrid.

    ``baselines`` holds the parameters :func:`tune.tune_baselines` picked (item-kNN, iALS,
    SLIM); without them item-kNN uses the hybrid's settings and iALS and SLIM are left out.
    """
    w = config.weighting
    baselines = baselines or {}
    knn = baselines.get("item-knn", {"k": config.knn_k, "shrink": config.knn_shrink})
    models: dict[str, Any] = {
        "popularity": Popularity(
            weighting=WeightingConfig(value_power=0.0, min_value=4.0), half_life_days=None
        ),
        "item-knn": baseline("item-knn", knn, w),
        "ease": EASE(lam=config.ease_lambda, max_items=config.ease_max_items, weighting=w),
    }
    for name in ("ials", "slim"):
        if name in baselines:
            models[name] = baseline(name, baselines[name], w)
    return models | {
        "sequence": SequentialKNN(
            window=config.sequence_window,
            last=config.sequence_last,
            decay=config.sequence_decay,
            weighting=replace(w, min_value=config.sequence_min_value),
        ),
        "content": ContentModel(
            text_weight=config.text_weight, topic_weight=config.topic_weight, weighting=w
        ),
        "fresh": Fresh(days=365.0, weighting=w),
        "prior": MetadataPrior(weighting=w),
        "hybrid": HybridRecommender(config),
    }


def movie_texts(catalog: ItemCatalog) -> list[str]:
    """Return "<title>. <genres>" per movie: what is known at release, embedded for content."""
    return [
        f"{title}. {', '.join(topics)}" if topics else str(title)
        for title, topics in zip(catalog.titles, catalog.topics, strict=True)
    ]


def evaluate(
    *,
    data_dir: Path,
    protocol: str,
    tuned: bool = True,
    fold: int = 0,
    embeddings: bool = False,
) -> dict[str, Any]:
    """Run the protocol on a MovieLens folder; return ``{"protocol", "users", "models"}``.

    With ``tuned`` (the default) hyper-parameters of the hybrid and of the baselines are
    chosen by :mod:`tune` on a validation split of the training input; otherwise the shipped
    defaults are used. ``fold`` selects another split (see :func:`make_split`);
    ``embeddings`` attaches MiniLM sentence embeddings of title and genres to the catalogue
    (the optional ``embeddings`` extra; minutes of CPU for MovieLens).
    """
    ml = load_movielens(data_dir)
    if embeddings:
        from newsletter.recommend.embeddings import embed_texts

        embedded = embed_texts(movie_texts(ml.catalog))
        ml = replace(ml, catalog=replace(ml.catalog, embeddings=embedded))
    split = make_split(ml, protocol, fold=fold)
    catalog = ml.catalog_for_split(split)
    vectors, _ = item_vectors(catalog)
    now = float(split.train.timestamp.max())
    config = HybridConfig()
    tuning: dict[str, Any] = {}

    def validation_catalog(val: Split) -> ItemCatalog:
        """Tags cut by both the test split's rule and the validation split's."""
        cut = np.minimum(split.user_cut(), val.user_cut())
        return ml.catalog_for(cut=cut, hidden=split.hidden_items() | val.hidden_items())

    baselines: dict[str, dict[str, Any]] = {}
    if tuned:
        result = tune(split.train, catalog, protocol=protocol, catalog_for=validation_catalog)
        config = result.config
        if protocol != "cold-items":  # collaborative baselines cannot score cold items
            baselines = tune_baselines(
                split.train,
                catalog,
                protocol=protocol,
                weighting=config.weighting,
                catalog_for=validation_catalog,
            )
        tuning = {"validation_ndcg@10": result.validation_ndcg, "config": describe(config)}
        tuning["baselines"] = baselines
    results: dict[str, dict[str, float]] = {}
    for name, model in evaluation_models(config, baselines).items():
        model.fit(split.train, catalog, now=now)
        results[name] = score_model(model, split, vectors=vectors)
    return {
        "protocol": protocol,
        "fold": fold,
        "users": len(split.users),
        "models": results,
        "tuning": tuning,
    }


def evaluate_aging(
    data: InteractionData, catalog: ItemCatalog, *, cut: float, horizon: float = 7 * DAY
) -> dict[str, Any]:
    """The aging protocol (see the module doc): every model fitted on the events before
    ``cut`` and ranking at ``cut + horizon``, with the shipped defaults (nothing is tuned, so
    nothing is tuned on the test window); ``hybrid`` uses the popularity weight the planner
    would choose on the same training events (``recommend.calibrate``)."""
    from newsletter.recommend.calibrate import choose_popularity_weight

    split = aging_split(data, catalog.published_at, cut=cut, horizon=horizon)
    if len(split.users) == 0:
        raise DataError("no reader read an item published in the last window: nothing to test")
    vectors, _ = item_vectors(catalog)
    now = cut + horizon
    base = HybridConfig()
    weight = choose_popularity_weight(base, split.train, catalog, now=cut, n=10).weight
    config = replace(base, blend={**base.blend, "popularity": weight})
    published = np.asarray(catalog.published_at, dtype=np.float64)
    young = published >= cut
    results: dict[str, dict[str, float]] = {}
    for name, model in evaluation_models(config).items():
        model.fit(split.train, catalog, now=now)
        results[name] = score_model(model, split, vectors=vectors, young=young)
    return {
        "protocol": "aging",
        "users": len(split.users),
        "test_items": int(split.test.nnz),
        "fresh_items": int(((published >= cut) & (published < now)).sum()),
        "models": results,
        "tuning": {"config": describe(config)},
    }


def describe(config: HybridConfig) -> dict[str, Any]:
    """Return the tuned hyper-parameters as plain JSON-able values."""
    return {
        "value_power": config.weighting.value_power,
        "half_life_days": config.weighting.half_life_days,
        "decay_from": config.weighting.decay_from,
        "ease_lambda": config.ease_lambda,
        "topic_weight": config.topic_weight,
        "blend": dict(config.blend),
    }
