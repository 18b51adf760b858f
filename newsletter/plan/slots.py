"""Where slot candidates come from: the SlotSource seam, and a source over fitted generators.

A :class:`SlotSource` answers, for a batch of user indices and one section kind, ranked
candidates with a score, a source name, a reason kind, a sentence template and per-slot
anchors (the title or topic a reason names). It must leave out what the user already
consumed. :class:`ModelSlotSource` implements it over any ``Recommender`` (the hybrid once it
lands; a collaborative model today) plus the ``Popularity`` generator:

* ``top_picks`` -- the ranker's best items ("Picked for you");
* ``because_you_read`` -- the ranker's items whose strongest history anchor is known
  (``ranker.anchors``), "Because you read <title>";
* ``new_in_topics`` -- the items published within ``fresh_days`` among the ranker's top
  ``WIDE`` (one ranking serves every personalized section), "New in <topic>" when the item
  carries a topic the subscriber chose (that topic, the first in the item's order), else the
  honest generic "Recently published" (reason kind ``fresh``);
* ``trending`` -- the popularity ranking, "Trending this week", times ``age_decay`` when the
  catalogue ages (items lose interest with age: what is trending should still be worth
  reading); the holdout (:meth:`ModelSlotSource.popular`) keeps the plain ranking;
* :meth:`ModelSlotSource.fallback` -- popular, then the newest live items, for what the
  sections cannot fill (small data: a pilot with a handful of rows still gets full messages).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import scipy.sparse as sp

from newsletter.recommend.base import DAY, ItemCatalog, Recommender
from newsletter.recommend.popular import Popularity

Array = np.ndarray
WIDE = 64  # ranked candidates per user shared by the personalized sections
NO_TOPIC = 10**6  # rank of a topic the item does not carry
GENERIC = ("top_pick", "Picked for you")
FRESH_FALLBACK = ("fresh", "Recently published")


@dataclass(frozen=True)
class Candidates:
    """Ranked candidates for one section: arrays of shape (users, n); item -1 = none."""

    items: Array
    scores: Array
    source: str
    reason_kind: str
    sentence: str  # may contain {anchor}
    anchors: Array | None = None  # object array of str | None, same shape as items
    fallback: tuple[str, str] = GENERIC  # (kind, sentence) of a slot without an anchor


class SlotSource(Protocol):
    """Candidates per section kind for a batch of users (already-consumed items left out)."""

    def candidates(self, kind: str, users: Array, n: int) -> Candidates: ...

    def popular(self, users: Array, n: int) -> Candidates: ...

    def fallback(self, users: Array, n: int) -> list[Candidates]: ...


@dataclass
class ModelSlotSource:
    """A SlotSource over a fitted ranker, the popularity generator and the catalogue."""

    ranker: Recommender
    popularity: Popularity
    catalog: ItemCatalog
    history: sp.csr_matrix  # users x items, nonzero = consumed
    user_topics: list[list[str]]
    now: float
    fresh_days: float = 14.0
    anchor_model: Any = None  # has anchors(users, items); defaults to the ranker
    age_decay: Array | None = None  # per item, multiplies popularity in "trending"
    _cache: dict[tuple[bytes, int, str], tuple[Array, Array]] = field(default_factory=dict)

    def _fresh_only(self, items: Array, scores: Array) -> tuple[Array, Array]:
        """Keep the fresh items of ranked rows, best first (the rest become -1 at the end)."""
        fresh = self._fresh_mask()[np.maximum(items, 0)] & (items >= 0)
        order = np.argsort(~fresh, axis=1, kind="stable")
        items = np.where(fresh, items, -1)
        return np.take_along_axis(items, order, 1), np.take_along_axis(scores, order, 1)

    def _ranked(self, users: Array, n: int, *, fresh: bool = False) -> tuple[Array, Array]:
        """One ranking per batch, shared by the sections (cached on the batch's user indices)."""
        key = (np.asarray(users, dtype=np.int64).tobytes(), n, "fresh" if fresh else "all")
        if key not in self._cache:
            mask = self._fresh_mask() if fresh else self._live_mask()
            self._cache.clear()
            self._cache[key] = self.ranker.recommend(
                users, n, exclude=self.history, candidates=mask
            )
        return self._cache[key]

    def _live_mask(self) -> Array:
        active = self.catalog.active
        live = np.ones(self.catalog.n_items, bool) if active is None else np.asarray(active, bool)
        if self.catalog.expires_at is not None:
            live &= np.asarray(self.catalog.expires_at, dtype=np.float64) > self.now
        return live

    def _fresh_mask(self) -> Array:
        published = np.asarray(self.catalog.published_at, dtype=np.float64)
        recent = (published >= self.now - self.fresh_days * DAY) & (published <= self.now)
        return self._live_mask() & recent

    def candidates(self, kind: str, users: Array, n: int) -> Candidates:
        """Ranked candidates of one section kind (see the module docstring)."""
        if kind == "trending":
            return self._trending(users, n, "trending", "Trending this week", decay=self.age_decay)
        if kind == "new_in_topics":
            items, scores = self._fresh_only(*self._ranked(users, max(n, WIDE)))
            anchors = self._topic_anchors(users, items[:, :n])
            return Candidates(
                items[:, :n],
                scores[:, :n],
                "fresh",
                "new_in_topic",
                "New in {anchor}",
                anchors,
                fallback=FRESH_FALLBACK,
            )
        items, scores = self._ranked(users, max(n, WIDE))
        items, scores = items[:, : max(n, WIDE // 2)], scores[:, : max(n, WIDE // 2)]
        source = str(getattr(self.ranker, "name", "model"))
        anchor_model = self.anchor_model or self.ranker
        if kind == "because_you_read" and hasattr(anchor_model, "anchors"):
            anchor_items = anchors_for(anchor_model, users, items)
            titles = np.array([*self.catalog.titles, None], dtype=object)
            named: Any = np.where(anchor_items >= 0, titles[anchor_items], None)
            known = np.where(anchor_items >= 0, items, -1)
            return Candidates(
                known, scores, source, "because_you_read", "Because you read {anchor}", named
            )
        return Candidates(items[:, :n], scores[:, :n], source, "top_pick", "Picked for you")

    def popular(self, users: Array, n: int) -> Candidates:
        """The popularity ranking for the holdout arm (minus what each user consumed)."""
        return self._trending(users, n, "popular", "Popular with readers this week")

    def fallback(self, users: Array, n: int) -> list[Candidates]:
        """What fills a message the sections could not: popular live items, then the newest.

        For small or new data sets, where the models have little to go on (a handful of
        interactions, no history for a subscriber, no fresh items): a pilot still sends.
        """
        engaged = self._live_mask() & (self.popularity.item_scores > 0)
        popular = self._trending(
            users, n, "popular", "Popular with readers this week", candidates=engaged
        )
        newest = np.argsort(-np.asarray(self.catalog.published_at, dtype=np.float64), kind="stable")
        newest = newest[self._live_mask()[newest]][: n + WIDE]
        return [popular, self._unseen(users, newest, "newest", "newest", "Recently published")]

    def _trending(
        self,
        users: Array,
        n: int,
        kind: str,
        sentence: str,
        candidates: Array | None = None,
        decay: Array | None = None,
    ) -> Candidates:
        mask = self._live_mask() if candidates is None else candidates
        if decay is None:
            ranking = self.popularity.ranking(n + 24, candidates=mask)
        else:
            aged = np.where(mask, self.popularity.item_scores * decay, -np.inf)
            ranking = np.argsort(-aged, kind="stable")[: n + 24]
            ranking = ranking[np.isfinite(aged[ranking])]
        return self._unseen(users, ranking, "popularity", kind, sentence)

    def _unseen(
        self, users: Array, ranking: Array, source: str, kind: str, sentence: str
    ) -> Candidates:
        """One ranking for every user, minus what each already consumed."""
        items = np.tile(ranking, (len(users), 1))
        seen = self.history[users][:, ranking].toarray() > 0 if len(ranking) else None
        if seen is not None:
            items[seen] = -1
        scores = np.tile(self.popularity.item_scores[ranking], (len(users), 1))
        return Candidates(items, scores, source, kind, sentence)

    def _topic_tables(self) -> tuple[Array, Array]:
        """Item x topic rank (position in the item's list, NO_TOPIC = absent) and the user x
        topic mask of chosen topics, topics compared case-folded; built once per source."""
        if not hasattr(self, "_tables"):
            keys = sorted({t.casefold() for ts in self.catalog.topics for t in ts})
            index = {t: k for k, t in enumerate(keys)}
            rank = np.full((self.catalog.n_items, len(keys) + 1), NO_TOPIC, dtype=np.int64)
            for i, ts in enumerate(self.catalog.topics):
                for pos, t in enumerate(ts):
                    rank[i, index[t.casefold()]] = min(rank[i, index[t.casefold()]], pos)
            chosen = np.zeros((len(self.user_topics), len(keys) + 1), dtype=bool)
            for u, ts in enumerate(self.user_topics):
                chosen[u, [index[k] for t in ts if (k := str(t).casefold()) in index]] = True
            self._tables = (rank, chosen)
        return self._tables

    def _topic_anchors(self, users: Array, items: Array) -> Array:
        """Per slot: the item's first topic that the subscriber chose, else None (no topic
        of theirs: the slot gets the generic reason, never a topic they do not follow)."""
        rank, chosen = self._topic_tables()
        ranks = rank[np.maximum(items, 0)]  # (B, n, T)
        user_rows = chosen[users] if len(chosen) else np.zeros((len(users), rank.shape[1]), bool)
        mine = np.where(user_rows[:, None, :], ranks, NO_TOPIC)
        position = mine.min(axis=2)
        anchors = np.full(items.shape, None, dtype=object)
        for b, c in zip(*np.nonzero((position < NO_TOPIC) & (items >= 0)), strict=True):
            anchors[b, c] = self.catalog.topics[int(items[b, c])][int(position[b, c])]
        return anchors


def anchors_for(model: Any, users: Array, items: Array, *, max_history: int = 32) -> Array:
    """Per (user, item): the history item contributing most to ``X[u] @ S`` (-1: none).

    Vectorised over the batch for item models (``matrix``, ``items``, ``weights``), using each
    user's ``max_history`` heaviest history items; other models use their own ``anchors``.
    """
    if not _explicit_weights(model):
        return np.asarray(model.anchors(users, items))
    if getattr(model.weights, "shape", None) != (len(model.items), len(model.items)):
        return np.asarray(model.anchors(users, items))  # e.g. EASE in its dual form
    pos = np.full(model.n_items, -1, dtype=np.int64)
    pos[model.items] = np.arange(len(model.items))
    if len(model.items) == 0:  # nothing engaged yet: no history item can be an anchor
        return np.full(items.shape, -1, dtype=np.int64)
    hist, weight = _top_history(sp.csr_matrix(model.matrix[users]), max_history)
    hp = np.where(hist >= 0, pos[np.maximum(hist, 0)], -1)
    ip = np.where(items >= 0, pos[np.maximum(items, 0)], -1)
    rows = np.broadcast_to(np.maximum(hp, 0)[:, :, None], (*hp.shape, items.shape[1]))
    cols = np.broadcast_to(np.maximum(ip, 0)[:, None, :], rows.shape)
    weights: Any = model.weights
    if hasattr(weights, "tocsr"):
        sub = np.asarray(weights.tocsr()[rows.ravel(), cols.ravel()]).reshape(rows.shape)
    else:
        sub = np.asarray(weights)[rows, cols]
    valid = (hp[:, :, None] >= 0) & (ip[:, None, :] >= 0)
    contrib = np.where(valid, weight[:, :, None] * sub, -np.inf)
    best = contrib.argmax(axis=1)
    value = np.take_along_axis(contrib, best[:, None, :], axis=1)[:, 0, :]
    return np.where(value > 0, np.take_along_axis(hist, best, axis=1), -1)


def _explicit_weights(model: Any) -> bool:
    """Whether the model holds its item x item weights over its modelled items.

    EASE fitted in the dual form (fewer users than engaged items: small data) keeps no such
    matrix, only its factors; its own ``anchors`` computes the pair weights from them.
    """
    if not all(hasattr(model, a) for a in ("matrix", "items", "weights", "n_items")):
        return False
    if getattr(model, "dual", None) is not None:
        return False
    return tuple(model.weights.shape) == (len(model.items), len(model.items))


def _top_history(rows: sp.csr_matrix, width: int) -> tuple[Array, Array]:
    """The `width` heaviest history items per row (-1 / 0 padded), from a CSR block."""
    n = rows.shape[0]
    row_of = np.repeat(np.arange(n), np.diff(rows.indptr))
    order = np.lexsort((-rows.data, row_of))
    rank = np.arange(len(order)) - rows.indptr[row_of[order]]
    keep = rank < width
    hist = np.full((n, width), -1, dtype=np.int64)
    weight = np.zeros((n, width))
    hist[row_of[order][keep], rank[keep]] = rows.indices[order][keep]
    weight[row_of[order][keep], rank[keep]] = rows.data[order][keep]
    return hist, weight


def history_matrix(n_users: int, n_items: int, users: Array, items: Array) -> sp.csr_matrix:
    """A users x items 0/1 matrix of what each user already consumed."""
    data = np.ones(len(users), dtype=np.float32)
    matrix = sp.csr_matrix((data, (users, items)), shape=(n_users, n_items))
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    return matrix


def sentence_for(
    template: str, anchor: Any, *, kind: str, fallback: tuple[str, str] = GENERIC
) -> tuple[str, str, str | None]:
    """The reason kind, text and anchor of one slot; a template that needs an anchor but has
    none gives the generic `fallback` (kind, sentence), never a half-true sentence."""
    if "{anchor}" not in template:
        return kind, template, None
    if anchor is None:
        return fallback[0], fallback[1], None
    return kind, template.format(anchor=anchor), str(anchor)
