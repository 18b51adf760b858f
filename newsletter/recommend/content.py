"""Content generators: TF-IDF item vectors, user profiles, and the "fresh items" generator.

Item vector = L2-normalised ``[text_weight * tfidf(title + text), topic_weight * tfidf(topics)]``
(scikit-learn ``TfidfVectorizer``). A user's profile is the weighted mean of the vectors of the
items they engaged with, plus the vector of the topics they declared; the score is the cosine
between profile and item. Items need no interactions, so this is what serves new items.
When exact scoring would be too much work (``nnz(vectors) x users`` over a limit), each item
keeps only its ``k`` most content-similar items and a user scores ``x_u @ neighbours``: the
same ranking as the profile cosine up to that truncation, at the cost of item-kNN. ``dims``
optionally reduces the vectors by truncated SVD instead.

:class:`Fresh` ranks only items published in the last ``days`` days by the same match.
:meth:`ContentModel.anchors` names the history item most similar to a recommended item
("Similar to <title>"); :meth:`ContentModel.topic_anchor` the declared topic it matches.
"""

from __future__ import annotations

from typing import Any, Self

import numpy as np
import scipy.sparse as sp
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize

from newsletter.recommend.base import (
    DAY,
    Array,
    InteractionData,
    ItemCatalog,
    ScoringModel,
    best_anchors,
    scale_rows,
    sparse_row_scale,
    to_dense,
)
from newsletter.recommend.collaborative import keep_top_k
from newsletter.recommend.weighting import WeightingConfig, interaction_matrix

EXACT_WORK_LIMIT = 5e8
# With sentence embeddings the neighbour form is always used: on MovieLens cold items it
# scored 0.045 NDCG@10 against 0.028 for the exact profile cosine (benchmarks/README.md).
EMBEDDED_WORK_LIMIT = 0.0


def _identity(tokens: list[str]) -> list[str]:
    """Analyzer for pre-tokenised topic lists (module-level so models stay picklable)."""
    return tokens


def content_neighbours(vectors: sp.csr_matrix, *, k: int, dense_tail: int = 0) -> sp.csr_matrix:
    """Return each item's k most content-similar other items (cosine) as a sparse matrix.

    The last ``dense_tail`` columns (sentence embeddings) are multiplied as a dense block.
    """
    n, width = vectors.shape
    chunk = max(16, 8_000_000 // max(n, 1))
    vectors = sp.csr_matrix(vectors)
    words = sp.csr_matrix(vectors[:, : width - dense_tail])
    wt = sp.csr_matrix(words.T)
    dense = to_dense(vectors[:, width - dense_tail :]) if dense_tail else None
    blocks = []
    for start in range(0, n, chunk):
        sim = to_dense(words[start : start + chunk] @ wt)
        if dense is not None:
            sim += dense[start : start + chunk] @ dense.T
        sim[np.arange(sim.shape[0]), np.arange(start, start + sim.shape[0])] = 0.0
        blocks.append(keep_top_k(sim, k))
    return sp.csr_matrix(sp.vstack(blocks), dtype=np.float32)


def _unit_rows(matrix: Array) -> Array:
    """Scale each row of a dense float array to unit L2 norm in place (zero rows stay zero)."""
    norms = np.sqrt(np.einsum("ij,ij->i", matrix, matrix))
    matrix /= np.where(norms > 0, norms, 1.0)[:, None].astype(matrix.dtype)
    return matrix


def item_vectors(
    catalog: ItemCatalog,
    *,
    text_weight: float = 1.0,
    topic_weight: float = 1.0,
    embedding_weight: float = 0.0,
) -> tuple[sp.csr_matrix, TfidfVectorizer]:
    """Return L2-normalised item vectors and the fitted topic vectorizer.

    ``[text_weight * tfidf(text), topic_weight * tfidf(topics), embedding_weight * embedding]``
    where the last block is the catalogue's sentence embeddings (when attached and the weight
    is positive); the topic columns come right after the text columns.
    """
    texts = [f"{t} {x}" for t, x in zip(catalog.titles, catalog.texts, strict=True)]
    text_vec = TfidfVectorizer(sublinear_tf=True, stop_words="english", min_df=1)
    try:
        text_part = text_vec.fit_transform(texts)
    except ValueError:
        text_part = sp.csr_matrix((len(texts), 0))
    topics = [[str(x).lower() for x in t] or ["(none)"] for t in catalog.topics]
    topic_vec = TfidfVectorizer(analyzer=_identity, sublinear_tf=True)
    topic_part = topic_vec.fit_transform(topics)
    blocks = [text_weight * text_part, topic_weight * topic_part]
    if embedding_weight > 0 and catalog.embeddings is not None:
        blocks.append(sp.csr_matrix(embedding_weight * np.asarray(catalog.embeddings)))
    stacked = sp.hstack(blocks).tocsr()
    return normalize(stacked).astype(np.float32), topic_vec


class ContentModel(ScoringModel):
    """Cosine between a user's content profile and every item's TF-IDF vector."""

    name = "content"

    def __init__(
        self,
        *,
        text_weight: float = 1.0,
        topic_weight: float = 1.0,
        declared_weight: float = 1.0,
        embedding_weight: float = 1.0,
        dims: int | None = None,
        k: int = 100,
        weighting: WeightingConfig | None = None,
    ) -> None:
        """Weights of text, topics, declared topics, embeddings; ``dims`` forces SVD reduction.

        ``embedding_weight`` applies only when the catalogue carries sentence embeddings.
        """
        self.text_weight = text_weight
        self.embedding_weight = embedding_weight
        self.topic_weight = topic_weight
        self.declared_weight = declared_weight
        self.dims = dims
        self.k = k
        self.weighting = weighting or WeightingConfig()
        # sparse TF-IDF rows, or dense SVD rows when ``dims`` is set (see module doc)
        self.vectors: Any = sp.csr_matrix((0, 0))
        self.declared: sp.csr_matrix = sp.csr_matrix((0, 0))
        self.matrix: sp.csr_matrix = sp.csr_matrix((0, 0))
        self.topics: list[list[str]] = []
        self.user_topics: list[list[str]] = []
        self.projection: TruncatedSVD | None = None
        self.neighbours: sp.csr_matrix | None = None

    def fit(self, data: InteractionData, catalog: ItemCatalog, *, now: float) -> Self:
        """Vectorise the catalogue and keep the weighted histories for profiles."""
        vectors, topic_vec = item_vectors(
            catalog,
            text_weight=self.text_weight,
            topic_weight=self.topic_weight,
            embedding_weight=self.embedding_weight,
        )
        self.matrix = interaction_matrix(data, self.weighting, now=now)
        self.n_items = data.n_items
        self.topics = [[str(x).lower() for x in t] for t in catalog.topics]
        self.user_topics = [[str(x).lower() for x in t] for t in (data.user_topics or [])]
        self.user_topics += [[] for _ in range(data.n_users - len(self.user_topics))]
        n_embedded = 0
        if self.embedding_weight > 0 and catalog.embeddings is not None:
            n_embedded = np.asarray(catalog.embeddings).shape[1]
        n_text = vectors.shape[1] - len(topic_vec.vocabulary_) - n_embedded
        declared = topic_vec.transform([t or ["(none)"] for t in self.user_topics])
        keep = np.ones(declared.shape[1], dtype=np.float32)
        if "(none)" in topic_vec.vocabulary_:
            keep[topic_vec.vocabulary_["(none)"]] = 0.0
        declared = sp.csr_matrix(declared.multiply(keep[None, :]))
        pad = sp.csr_matrix((data.n_users, n_text))
        tail = sp.csr_matrix((data.n_users, n_embedded))
        self.declared = normalize(sp.hstack([pad, declared, tail]).tocsr()).astype(np.float32)
        self.vectors = self._maybe_reduce(vectors, data.n_users, n_embedded)
        return self

    def _maybe_reduce(self, vectors: sp.csr_matrix, n_users: int, n_embedded: int) -> Any:
        """Reduce by SVD when asked; keep top-k content neighbours when exact is too much work.

        ``n_embedded`` trailing columns are a dense embedding block (always the neighbour form).
        """
        dims = self.dims
        self.neighbours = None
        limit = EMBEDDED_WORK_LIMIT if n_embedded else EXACT_WORK_LIMIT
        if dims is None and float(vectors.nnz) * n_users > limit:
            self.neighbours = content_neighbours(vectors, k=self.k, dense_tail=n_embedded)
        if dims is None or dims >= min(vectors.shape) - 1:
            self.projection = None
            return vectors
        svd = TruncatedSVD(n_components=dims, random_state=0)
        reduced = svd.fit_transform(vectors)
        self.projection = svd
        return normalize(reduced).astype(np.float32)

    def profiles(self, users: Array) -> Array:
        """Return L2-normalised user profiles (weighted history mean plus declared topics)."""
        prof = _unit_rows(to_dense(self.matrix[users] @ self.vectors).astype(np.float32))
        declared_rows = self.declared[users]
        if declared_rows.nnz:
            if self.projection is not None:
                declared = self.projection.transform(declared_rows)
            else:
                declared = declared_rows.toarray()
            prof += self.declared_weight * _unit_rows(np.asarray(declared, dtype=np.float32))
        return _unit_rows(prof)

    def score(self, users: Array) -> Array:
        """Return cosine(profile, item) for every item (or its top-k neighbour form)."""
        sparse = self.score_sparse(users)
        if sparse is not None:
            return to_dense(sparse)
        prof = self.profiles(users)
        if isinstance(self.vectors, np.ndarray):
            return prof @ self.vectors.T
        return np.asarray(self.vectors @ prof.T).T

    def score_sparse(self, users: Array) -> sp.csr_matrix | None:
        """Return the neighbour-form scores as CSR (None in exact mode).

        ``cos(mean profile, item)`` is proportional to ``sum_j w_j cos(v_j, item)``, so per
        user (after dividing by the row maximum) this is the profile score with each history
        item's similarities truncated to its k nearest items: sparse and cheap at any scale.
        """
        if self.neighbours is None:
            return None
        hist = sp.csr_matrix(self.matrix[users] @ self.neighbours, dtype=np.float32)
        hist = scale_rows(hist, sparse_row_scale(hist))
        declared_rows = self.declared[users]
        if declared_rows.nnz:
            if self.projection is not None:
                declared_rows = self.projection.transform(declared_rows)
            topic = sp.csr_matrix(declared_rows @ self.vectors.T, dtype=np.float32)
            hist = hist + scale_rows(topic, self.declared_weight * sparse_row_scale(topic))
        return sp.csr_matrix(hist)

    def item_similarity(self, items: Array, others: Array) -> Array:
        """Return the cosine matrix between two lists of items."""
        a, b = self.vectors[items], self.vectors[others]
        sim = a @ b.T
        return to_dense(sim)

    def anchors(self, users: Array, items: Array) -> Array:
        """Return, per (user, item), the most similar engaged history item (-1: none)."""
        history = sp.csr_matrix(self.matrix[np.asarray(users)])
        return best_anchors(history, items, self.pair_similarity)

    def pair_similarity(self, left: Array, right: Array) -> Array:
        """Return cosine(item left[k], item right[k]) for aligned index arrays."""
        if isinstance(self.vectors, np.ndarray):
            return np.einsum("ij,ij->i", self.vectors[left], self.vectors[right])
        a, b = self.vectors[left], self.vectors[right]
        return np.asarray(a.multiply(b).sum(axis=1)).ravel()

    def topic_anchor(self, user: int, item: int) -> str | None:
        """Return the first declared topic of ``user`` that ``item`` carries, if any."""
        mine = self.user_topics[user] if user < len(self.user_topics) else []
        for topic in self.topics[item]:
            if topic in mine:
                return topic
        return None


class Fresh(ContentModel):
    """Items published in the last ``days`` days, ranked by content match to the user."""

    name = "fresh"

    def __init__(self, *, days: float = 14.0, **kwargs: object) -> None:
        """``days`` is the freshness window; other arguments as for ContentModel."""
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.days = days
        self.is_fresh: Array = np.zeros(0, dtype=bool)

    def fit(self, data: InteractionData, catalog: ItemCatalog, *, now: float) -> Self:
        """Fit the content model and mark the items published within the window."""
        super().fit(data, catalog, now=now)
        published = np.asarray(catalog.published_at, dtype=np.float64)
        self.is_fresh = (published >= now - self.days * DAY) & (published <= now)
        return self

    def score(self, users: Array) -> Array:
        """Content match on fresh items; every other item is ``-inf``."""
        scores = super().score(users).astype(np.float64)
        scores[:, ~self.is_fresh] = -np.inf
        return scores
