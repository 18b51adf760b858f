"""Click-model ranking: the hybrid's candidates re-scored by what readers of the emails clicked.

Typical use (the planner's batch API)::

    ranker = ClickRanker(HybridConfig()).fit(data, catalog, now=now, log=exposures)
    items, scores = ranker.recommend(users, 8, exclude=sent)      # Recommender protocol
    scores = ranker.rescore(users, items, section="top")          # any candidate slots
    ranker.learned                                                # False: hybrid order kept

Features of a (subscriber, item) pair at a time ``t`` (:data:`CLICK_FEATURES`): every hybrid
feature (each generator's score, popularity, recency), ``similarity_recent`` (the best
content cosine between the item and the subscriber's ``recent`` latest reads before ``t``),
``item_age`` (``log1p`` days since publication at ``t``), ``topic_overlap`` (share of those
recent reads, and of the declared topics, that share a topic with the item), ``activity``
(``log1p`` of the subscriber's events before ``t``), ``shown_before`` (``log1p`` of the
times the log shows the item to the subscriber before ``t``: readers who skipped an item
once may skip it again, and how much is learned, not assumed) and one indicator per section.
Position is not a feature: it enters only through the examination propensity (``clicks.py``).

The logged slots are scored as they looked when they were sent: the log is cut into sends
(its ``send`` ids, else slots sent within ``SEND_GAP`` of each other), and the slots of each
of the last ``max_sends`` sends are scored by a hybrid fitted on the interactions before
that send. So a clicked item never scores itself through the subscriber's own click, and a
news item that was new at the send is scored as new (one hybrid fitted before the first
send would see no behaviour on anything published since, and would teach the model that
items the serving hybrid knows well are clicked without any collaborative score). The
hybrid that serves is fitted on everything. With a log too thin to learn from, ``learned``
is False and every call returns the hybrid's own ranking and scores.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Self

import numpy as np
import scipy.sparse as sp

from newsletter.recommend.base import DAY, Array, InteractionData, ItemCatalog
from newsletter.recommend.clicks import ClickModel, ExposureLog, fit_click_model
from newsletter.recommend.hybrid import HybridConfig, HybridRecommender
from newsletter.recommend.ranker import FEATURES

CONTEXT_FEATURES = ("similarity_recent", "item_age", "topic_overlap", "activity", "shown_before")
CLICK_FEATURES = FEATURES + CONTEXT_FEATURES
PAIR_BATCH = 256  # subscribers whose hybrid feature blocks are held at once
SEND_GAP = DAY  # logged slots further apart than this belong to different sends


@dataclass(frozen=True)
class TimeIndex:
    """Events sorted by (group, whole second): how many of a group's come before a time."""

    keys: Array  # sorted: group * span + whole seconds since t0
    span: int
    t0: int

    @classmethod
    def build(cls, groups: Array, times: Array) -> tuple[TimeIndex, Array]:
        """The index of (group, time) events, and the order that sorts them."""
        seconds = np.floor(np.asarray(times, dtype=np.float64)).astype(np.int64)
        t0 = int(seconds.min()) if len(seconds) else 0
        span = int(seconds.max() - t0 + 2) if len(seconds) else 2
        keys = np.asarray(groups, dtype=np.int64) * span + (seconds - t0)
        order = np.argsort(keys, kind="stable")
        return cls(keys[order], span, t0), order

    def search(self, groups: Array, times: Array) -> Array:
        """Per query, the position just past the group's events in whole seconds before ``t``'s
        (a time before the first event counts none, one after the last counts all)."""
        seconds = np.floor(np.asarray(times, dtype=np.float64)) - self.t0
        t = np.clip(seconds, 0, self.span - 1).astype(np.int64)
        return np.searchsorted(self.keys, np.asarray(groups, dtype=np.int64) * self.span + t)


@dataclass(frozen=True)
class ClickContext:
    """Histories in time order (CSR-like), item and declared topics, publication times."""

    starts: Array
    items: Array
    index: TimeIndex
    item_topics: sp.csr_matrix
    declared: sp.csr_matrix
    published: Array

    @classmethod
    def build(cls, data: InteractionData, catalog: ItemCatalog) -> ClickContext:
        """Sort human events by (subscriber, time) and index topics."""
        human = np.ones(len(data.user_idx), dtype=bool)
        if data.machine is not None:
            human = ~np.asarray(data.machine, dtype=bool)
        users, items = data.user_idx[human], data.item_idx[human]
        index, order = TimeIndex.build(users, np.asarray(data.timestamp)[human])
        starts = np.r_[0, np.cumsum(np.bincount(users, minlength=data.n_users))]
        names: dict[str, int] = {}
        rows = [
            (i, names.setdefault(str(t).lower(), len(names)))
            for i, topics in enumerate(catalog.topics)
            for t in topics
        ]
        declared = [
            (u, names[str(t).lower()])
            for u, topics in enumerate(data.user_topics or [])
            for t in topics
            if str(t).lower() in names
        ]
        return cls(
            starts=starts,
            items=items[order],
            index=index,
            item_topics=_binary(rows, (catalog.n_items, len(names))),
            declared=_binary(declared, (data.n_users, len(names))),
            published=np.asarray(catalog.published_at, dtype=np.float64),
        )

    def before(self, users: Array, times: Array) -> Array:
        """Return, per pair, the index just past the subscriber's last event before ``t``."""
        return self.index.search(users, times)


@dataclass(frozen=True)
class ShownBefore:
    """Counts earlier exposures of (subscriber, item) pairs in a log, by time."""

    index: TimeIndex
    n_items: int

    @classmethod
    def build(cls, log: ExposureLog | None, n_items: int) -> ShownBefore:
        """Index the log's exposures (an empty index without a log)."""
        if log is None:
            return cls(TimeIndex.build(np.zeros(0), np.zeros(0))[0], n_items)
        pair = np.asarray(log.user_idx, dtype=np.int64) * n_items + log.item_idx
        return cls(TimeIndex.build(pair, log.sent_at)[0], n_items)

    def count(self, users: Array, items: Array, times: Array) -> Array:
        """Per aligned pair, the exposures in whole seconds before ``t``'s (never itself)."""
        pair = np.asarray(users, dtype=np.int64) * self.n_items + np.asarray(items)
        first = self.index.search(pair, np.full(len(pair), -np.inf))
        return (self.index.search(pair, times) - first).astype(np.float64)


def _sends(log: ExposureLog) -> list[Array]:
    """Indices of the log's slots per send, oldest first: by ``send`` id when the log has
    them, else a gap over SEND_GAP between sorted send times starts a new send."""
    sent_at = np.asarray(log.sent_at, dtype=np.float64)
    order = np.argsort(sent_at, kind="stable")
    if log.send is not None:
        ids = np.asarray(log.send)[order]
        keys, first = np.unique(ids, return_index=True)
        return [order[ids == key] for key in keys[np.argsort(first, kind="stable")]]
    starts = np.flatnonzero(np.r_[True, np.diff(sent_at[order]) > SEND_GAP])
    return np.split(order, starts[1:])


def _take(log: ExposureLog, idx: Array) -> ExposureLog:
    """The log's slots at ``idx``, in that order."""
    parts: dict[str, Any] = {}
    for name in ExposureLog.__dataclass_fields__:
        value = getattr(log, name)
        parts[name] = None if value is None else np.asarray(value)[idx]
    return ExposureLog(**parts)


def _binary(pairs: list[tuple[int, int]], shape: tuple[int, int]) -> sp.csr_matrix:
    """Return a 0/1 CSR matrix with ones at the given (row, column) pairs."""
    rows = np.array([p[0] for p in pairs], dtype=np.int64)
    cols = np.array([p[1] for p in pairs], dtype=np.int64)
    matrix = sp.csr_matrix((np.ones(len(pairs), dtype=np.float32), (rows, cols)), shape=shape)
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    return matrix


def _shares_topic(left: sp.csr_matrix, right: sp.csr_matrix) -> Array:
    """Return, per aligned row, whether the two 0/1 topic rows share a topic."""
    return np.asarray(left.multiply(right).sum(axis=1)).ravel() > 0


def context_features(
    hybrid: HybridRecommender,
    context: ClickContext,
    users: Array,
    items: Array,
    times: Array,
    *,
    recent: int = 5,
    shown: ShownBefore | None = None,
) -> dict[str, Array]:
    """Return the context features of aligned (user, item, time) pairs (see module doc)."""
    end = context.before(users, times)
    start = context.starts[users]
    content = hybrid.generators["content"]
    best = np.zeros(len(users))
    shared = np.zeros(len(users))
    counted = np.zeros(len(users))
    item_rows = context.item_topics[items]
    for r in range(1, recent + 1):
        idx = end - r
        ok = idx >= start
        if not ok.any():
            break
        j = context.items[idx[ok]]
        sim = content.pair_similarity(j, items[ok])
        best[ok] = np.maximum(best[ok], sim)
        shared[ok] += _shares_topic(context.item_topics[j], item_rows[np.flatnonzero(ok)])
        counted[ok] += 1
    follows = np.asarray(context.declared[users].sum(axis=1)).ravel() > 0
    shared += _shares_topic(context.declared[users], item_rows) & follows
    counted += follows
    age = np.maximum(times - context.published[items], 0.0) / DAY
    return {
        "similarity_recent": best,
        "item_age": np.log1p(age),
        "topic_overlap": shared / np.maximum(counted, 1.0),
        "activity": np.log1p(end - start),
        "shown_before": np.log1p(shown.count(users, items, times))
        if shown is not None
        else np.zeros(len(users)),
    }


def pair_design(
    hybrid: HybridRecommender,
    context: ClickContext,
    users: Array,
    items: Array,
    times: Array,
    sections: Array,
    section_names: tuple[str, ...],
    shown: ShownBefore | None = None,
) -> Array:
    """Return the design matrix of aligned pairs: CLICK_FEATURES, then section indicators."""
    users = np.asarray(users, dtype=np.int64)
    items = np.asarray(items, dtype=np.int64)
    hybrid_part = np.zeros((len(users), len(FEATURES)), dtype=np.float64)
    order = np.argsort(users, kind="stable")
    ordered = users[order]
    unique = np.unique(users)
    for start in range(0, len(unique), PAIR_BATCH):
        chunk = unique[start : start + PAIR_BATCH]
        lo = int(np.searchsorted(ordered, chunk[0], side="left"))
        hi = int(np.searchsorted(ordered, chunk[-1], side="right"))
        sel = order[lo:hi]
        row = np.searchsorted(chunk, users[sel])
        block = hybrid.features(chunk)
        for f, name in enumerate(FEATURES):
            hybrid_part[sel, f] = np.asarray(block[name])[row, items[sel]]
    when = np.asarray(times, dtype=np.float64)
    ctx = context_features(hybrid, context, users, items, when, shown=shown)
    ctx_part = np.column_stack([ctx[name] for name in CONTEXT_FEATURES])
    section_part = (np.asarray(sections)[:, None] == np.array(section_names)[None, :]).astype(
        np.float64
    )
    return np.hstack([hybrid_part, ctx_part, section_part])


class ClickRanker:
    """The hybrid's candidates re-ranked by a click model learned from logged slots."""

    name = "click-ranker"

    def __init__(
        self,
        config: HybridConfig | None = None,
        *,
        pool: int = 50,
        min_clicks: int = 100,
        min_randomised: int = 500,
        max_sends: int = 4,
    ) -> None:
        """``pool`` hybrid candidates per subscriber are re-scored; thresholds as in clicks.py;
        the slots of the last ``max_sends`` sends are learned from (one hybrid fit each)."""
        self.config = config or HybridConfig()
        self.pool = pool
        self.max_sends = max_sends
        self.min_clicks = min_clicks
        self.min_randomised = min_randomised
        self.model: ClickModel | None = None
        self.section_names: tuple[str, ...] = ()
        self.now = 0.0

    @property
    def learned(self) -> bool:
        """Whether a click model was learned (False: the hybrid's ranking is used as is)."""
        return self.model is not None

    def fit(
        self,
        data: InteractionData,
        catalog: ItemCatalog,
        *,
        now: float,
        log: ExposureLog | None = None,
    ) -> Self:
        """Fit the serving hybrid and, from ``log``, the click model (see the module doc)."""
        self.now = float(now)
        self.hybrid = HybridRecommender(self.config).fit(data, catalog, now=now)
        self.context = ClickContext.build(data, catalog)
        self.shown = ShownBefore.build(log, catalog.n_items)
        self.model = None
        if log is not None and len(log.user_idx) and np.sum(log.clicked) >= self.min_clicks:
            self.model = self._learn(data, catalog, log)
        return self

    def _learn(
        self, data: InteractionData, catalog: ItemCatalog, log: ExposureLog
    ) -> ClickModel | None:
        """Score each send's slots with a hybrid fitted before it, then fit the model."""
        self.section_names = tuple(sorted({str(s) for s in log.section}))
        sends = _sends(log)[-self.max_sends :]
        times = np.asarray(data.timestamp)
        rows, designs = [], []
        for idx in sends:
            first = float(np.min(log.sent_at[idx]))
            past = HybridRecommender(self.config).fit(
                data.subset(times < first), catalog, now=first
            )
            designs.append(
                pair_design(
                    past,
                    self.context,
                    log.user_idx[idx],
                    log.item_idx[idx],
                    log.sent_at[idx],
                    np.asarray(log.section)[idx].astype(str),
                    self.section_names,
                    self.shown,
                )
            )
            rows.append(idx)
        kept = np.concatenate(rows)
        names = CLICK_FEATURES + tuple(f"section={s}" for s in self.section_names)
        return fit_click_model(
            np.vstack(designs),
            names,
            _take(log, kept),
            min_clicks=self.min_clicks,
            min_randomised=self.min_randomised,
        )

    def rescore(self, users: Array, items: Array, *, section: str = "top") -> Array:
        """Return the click model's ``r(x)`` for candidate slots ``(len(users), width)``.

        Slots holding ``-1`` score ``-inf``; without a learned model the hybrid's own blended
        scores are returned, so sorting by the result always gives a valid ranking.
        """
        users = np.asarray(users, dtype=np.int64)
        items = np.asarray(items, dtype=np.int64)
        width = items.shape[1]
        flat_users = np.repeat(users, width)
        flat_items = np.maximum(items.ravel(), 0)
        if self.model is None:
            total = self.hybrid.blend(users).total
            scores = np.take_along_axis(total, np.maximum(items, 0), axis=1).astype(np.float64)
        else:
            design = pair_design(
                self.hybrid,
                self.context,
                flat_users,
                flat_items,
                np.full(len(flat_users), self.now),
                np.full(len(flat_users), section),
                self.section_names,
                self.shown,
            )
            scores = self.model.relevance(design).reshape(items.shape)
        return np.where(items >= 0, scores, -np.inf)

    def recommend(
        self,
        users: Array,
        n: int,
        *,
        exclude: sp.csr_matrix | None = None,
        candidates: Array | None = None,
        section: str = "top",
    ) -> tuple[Array, Array]:
        """Return the top-n items and scores per user (the Recommender protocol)."""
        items, scores = self.hybrid.recommend(
            users, max(self.pool, n), exclude=exclude, candidates=candidates
        )
        if self.model is None:
            return items[:, :n], scores[:, :n]
        learned = self.rescore(users, items, section=section)
        order = np.argsort(-learned, axis=1, kind="stable")[:, :n]
        top_items = np.take_along_axis(items, order, axis=1)
        top_scores = np.take_along_axis(learned, order, axis=1)
        top_items[~np.isfinite(top_scores)] = -1
        return top_items, top_scores
