"""The hidden truth of a simulated world: what items are really about and what people like.

Nothing here is built from the recommender's assumptions. Every item has hidden factors
(a Dirichlet mix over ``catalogue.factors`` dimensions) and a heavy-tailed quality
(lognormal); its visible topics name its main factor's label only with probability
``topic_reveal`` (several factors share a label, and a second topic may be noise), and its
summary mixes factor words with noise. Every subscriber has a hidden taste over the same
factors that drifts every week, an activity level, a mail client, and may sit behind Apple
Mail Privacy Protection or a corporate link scanner.

The chance that a person clicks an item when they look at it (its *hidden utility*) is::

    p(u, i, t) = min(max_click, click_base * (K * taste_u . factors_i) ** sharpness
                                * quality_i * 0.5 ** (age_i(t) / half_life))

and zero when the item is not yet published, past its shelf life, or already consumed (a
repeatable item is wanted again ``repeat_days`` after it was consumed). Everything is numpy
over integer indices; item ``i`` is ``item-{i+1}``, subscriber ``u`` is ``reader-{u+1}``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from newsletter.simulate.agents import client_families
from newsletter.simulate.params import WorldParams

DAY = 86400.0
TOPIC_NAMES = [
    "politics",
    "economy",
    "technology",
    "science",
    "climate",
    "health",
    "sports",
    "culture",
    "film",
    "food",
    "travel",
    "education",
    "business",
    "world",
    "cities",
    "books",
    "music",
    "gaming",
    "style",
    "family",
    "property",
    "energy",
    "law",
    "space",
    "ocean",
    "farming",
    "media",
    "religion",
    "history",
    "design",
    "crime",
    "transport",
    "fashion",
    "beauty",
    "garden",
    "pets",
    "motoring",
]
SYLLABLES = [
    "ka",
    "lo",
    "mi",
    "ne",
    "ru",
    "ta",
    "vo",
    "shi",
    "pa",
    "de",
    "gu",
    "ri",
    "zo",
    "be",
    "la",
    "no",
    "fi",
    "su",
    "ha",
    "me",
]
Array = np.ndarray


def _words(rng: np.random.Generator, n: int) -> list[str]:
    """n pseudo-words (two or three syllables), all different."""
    out: list[str] = []
    seen: set[str] = set()
    while len(out) < n:
        word = "".join(rng.choice(SYLLABLES, rng.integers(2, 4)))
        if word not in seen:
            seen.add(word)
            out.append(word)
    return out


@dataclass
class Catalogue:
    """Hidden and visible facts of every item published so far (index = item number - 1)."""

    factors: Array = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    quality: Array = field(default_factory=lambda: np.zeros(0))
    published: Array = field(default_factory=lambda: np.zeros(0))
    repeatable: Array = field(default_factory=lambda: np.zeros(0, bool))
    topics: list[list[str]] = field(default_factory=list)
    titles: list[str] = field(default_factory=list)
    summaries: list[str] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.quality)


@dataclass
class People:
    """Hidden and visible facts of every subscriber so far (index = reader number - 1)."""

    taste: Array
    activity: Array
    joined: Array
    mpp: Array
    scanner: Array
    disguised: Array
    dead: Array
    images_blocked: Array
    mail_client: Array
    browser: Array
    declared: list[list[str]]
    fatigue: Array
    left: Array  # unsubscribed or bounced: no more email

    @property
    def n(self) -> int:
        return len(self.activity)


class HiddenWorld:
    """The world's state and its ground-truth utility; seeded, vectorised, append-only ids."""

    def __init__(self, params: WorldParams, *, seed: int, start: float) -> None:
        self.params, self.seed, self.start = params, seed, start
        c = params.catalogue
        rng = self.rng("setup")
        self.factor_topic = np.arange(c.factors) % c.topics
        rng.shuffle(self.factor_topic)
        self.topic_names = list(TOPIC_NAMES[: c.topics])
        self.factor_words = [_words(rng, 6) for _ in range(c.factors)]
        self.noise_words = _words(rng, 40)
        self.items = Catalogue(factors=np.zeros((0, c.factors), np.float32))
        self.people = self._new_people(0, rng, 0.0)
        self._pending: list[tuple[Array, Array, Array]] = []
        self._consumed_base = sp.csr_matrix((0, 0))
        self._consumed_cache: sp.csr_matrix | None = None

    def rng(self, purpose: str, week: int = -1) -> np.random.Generator:
        """An independent generator per (seed, purpose, week): results never depend on order."""
        key = sum((k + 1) * ord(ch) for k, ch in enumerate(purpose))
        return np.random.default_rng([self.seed, key, week + 10])

    # -- items -----------------------------------------------------------------------------
    def publish(self, n: int, *, start: float, end: float, rng: np.random.Generator) -> Array:
        """Publish n items at uniform times in [start, end); returns their indices."""
        c = self.params.catalogue
        factors = rng.dirichlet(np.full(c.factors, c.factor_concentration), n).astype(np.float32)
        sigma = c.quality_sigma
        quality = rng.lognormal(-sigma * sigma / 2, sigma, n)
        published = np.sort(rng.uniform(start, end, n))
        first = self.items.n
        for row in factors:
            self._describe(row, rng)
        items = self.items
        items.factors = np.vstack([items.factors, factors])
        items.quality = np.concatenate([items.quality, quality])
        items.published = np.concatenate([items.published, published])
        items.repeatable = np.concatenate([items.repeatable, rng.random(n) < c.repeat_share])
        self._consumed_cache = None
        return np.arange(first, first + n)

    def _describe(self, factors: Array, rng: np.random.Generator) -> None:
        """Visible topics, title and summary that reveal the hidden factors only partly."""
        c = self.params.catalogue
        order = np.argsort(-factors)
        main, second = int(order[0]), int(order[1])
        topics = self.topic_names
        first = topics[self.factor_topic[main]] if rng.random() < c.topic_reveal else None
        first = first or topics[int(rng.integers(0, len(topics)))]
        chosen = [first]
        if rng.random() < c.extra_topic_share:
            other = self.factor_topic[second] if rng.random() < 0.5 else rng.integers(0, c.topics)
            if topics[int(other)] != first:
                chosen.append(topics[int(other)])
        words = []
        for _ in range(10):
            if rng.random() < c.text_reveal:
                factor = int(rng.choice(len(factors), p=factors / factors.sum()))
                words.append(str(rng.choice(self.factor_words[factor])))
            else:
                words.append(str(rng.choice(self.noise_words)))
        self.items.topics.append(chosen)
        self.items.titles.append(f"{words[0].capitalize()} {words[1]} and the {words[2]}")
        self.items.summaries.append(" ".join(words[3:]).capitalize() + ".")

    # -- people ----------------------------------------------------------------------------
    def _new_people(self, n: int, rng: np.random.Generator, joined: float) -> People:
        s, m = self.params.subscribers, self.params.machines
        k = self.params.catalogue.factors
        taste = rng.dirichlet(np.full(k, s.taste_concentration), n).astype(np.float32)
        sigma = s.activity_sigma
        mail, browser = client_families(rng, n)
        scanner = rng.random(n) < m.scanner_share
        declared = []
        for row in taste:
            if rng.random() < s.declare_topics_share:
                top = [self.topic_names[self.factor_topic[f]] for f in np.argsort(-row)[:2]]
                declared.append(sorted(set(top)))
            else:
                declared.append([])
        return People(
            taste=taste,
            activity=rng.lognormal(-sigma * sigma / 2, sigma, n),
            joined=np.full(n, joined),
            mpp=rng.random(n) < m.apple_mpp_share,
            scanner=scanner,
            disguised=scanner & (rng.random(n) < m.disguised_scanner_share),
            dead=rng.random(n) < m.dead_address_share,
            images_blocked=rng.random(n) < self.params.email.images_blocked_share,
            mail_client=mail,
            browser=browser,
            declared=declared,
            fatigue=np.zeros(n),
            left=np.zeros(n, bool),
        )

    def sign_up(self, n: int, *, at: float, rng: np.random.Generator) -> Array:
        """Add n subscribers joining at `at`; returns their indices."""
        new = self._new_people(n, rng, at)
        old = self.people
        first = old.n
        merged: dict[str, Any] = {}
        for name in People.__dataclass_fields__:
            a, b = getattr(old, name), getattr(new, name)
            merged[name] = a + b if isinstance(a, list) else np.concatenate([a, b])
        self.people = People(**merged)
        self._consumed_cache = None
        return np.arange(first, first + n)

    def drift(self, rng: np.random.Generator) -> None:
        """Replace a share of every taste by a fresh draw (tastes change over weeks)."""
        s = self.params.subscribers
        k = self.params.catalogue.factors
        draws = rng.dirichlet(np.full(k, s.taste_concentration), self.people.n)
        d = s.drift_per_week
        self.people.taste = ((1 - d) * self.people.taste + d * draws).astype(np.float32)

    # -- utility ---------------------------------------------------------------------------
    def consume(self, users: Array, items: Array, times: Array) -> None:
        """Remember that users consumed items at times (the latest time wins)."""
        if len(users):
            self._pending.append((np.asarray(users), np.asarray(items), np.asarray(times, float)))
            self._consumed_cache = None

    def _consumed(self) -> sp.csr_matrix:
        """users x items: the last consumption time (seconds) of every consumed pair."""
        if self._consumed_cache is None:
            shape = (self.people.n, self.items.n)
            matrix = self._consumed_base.copy()
            matrix.resize(shape)  # type: ignore[arg-type]
            if self._pending:
                u, i, t = (np.concatenate(parts) for parts in zip(*self._pending, strict=True))
                order = np.lexsort((t, i, u))  # per pair the latest time last
                u, i, t = u[order], i[order], t[order]
                last = np.r_[(u[1:] != u[:-1]) | (i[1:] != i[:-1]), True]
                new = sp.csr_matrix((t[last], (u[last], i[last])), shape=shape)
                matrix = matrix.maximum(new).tocsr()
                self._pending = []
            self._consumed_base = matrix
            self._consumed_cache = matrix
        return self._consumed_cache

    def _freshness(self, items: Array, t: Array | float) -> Array:
        c = self.params.catalogue
        age = (np.asarray(t) - self.items.published[items]) / DAY
        fresh = np.power(0.5, np.maximum(age, 0.0) / c.half_life_days)
        return np.where((age >= 0) & (age <= c.shelf_life_days), fresh, 0.0)

    def _blocked(self, users: Array, items: Array, t: Array | float) -> Array:
        """True where a pair was consumed and is not (yet again) wanted."""
        last = np.asarray(self._consumed()[users, items]).ravel()
        seen = last > 0
        again = self.items.repeatable[items] & (
            np.asarray(t) - last > self.params.catalogue.repeat_days * DAY
        )
        return seen & ~again

    def utility(self, users: Array, items: Array, t: Array | float) -> Array:
        """p(u, i, t) for aligned arrays of users and items (see the module docstring)."""
        e, s = self.params.email, self.params.subscribers
        k = self.params.catalogue.factors
        match = k * np.einsum("ij,ij->i", self.people.taste[users], self.items.factors[items])
        p = e.click_base * np.power(match, s.taste_sharpness) * self.items.quality[items]
        p = np.minimum(p * self._freshness(items, t), e.max_click)
        return np.where(self._blocked(users, items, t), 0.0, p)

    def live(self, t: float) -> Array:
        """Items published and within their shelf life at t."""
        age = (t - self.items.published) / DAY
        return np.flatnonzero((age >= 0) & (age <= self.params.catalogue.shelf_life_days))

    def utility_block(self, users: Array, items: Array, t: float) -> Array:
        """users x items matrix of p(u, i, t) (consumed pairs zeroed)."""
        e, s = self.params.email, self.params.subscribers
        k = self.params.catalogue.factors
        match = k * (self.people.taste[users] @ self.items.factors[items].T)
        scale = e.click_base * self.items.quality[items] * self._freshness(items, t)
        p = np.minimum(np.power(np.maximum(match, 0), s.taste_sharpness) * scale, e.max_click)
        seen = self._consumed()[users][:, items]
        if seen.nnz:
            rows, cols = seen.nonzero()
            last = np.asarray(seen[rows, cols]).ravel()
            again = self.items.repeatable[items[cols]] & (
                t - last > self.params.catalogue.repeat_days * DAY
            )
            p[rows[~again], cols[~again]] = 0.0
        return p

    def oracle(self, users: Array, t: float, n: int, *, chunk: int = 2048) -> Array:
        """Per user: the mean p of the n best live, unconsumed items at t (the best email)."""
        items = self.live(t)
        out = np.zeros(len(users))
        if len(items) == 0:
            return out
        width = min(n, len(items))
        for start in range(0, len(users), chunk):
            block = self.utility_block(users[start : start + chunk], items, t)
            top = np.partition(block, block.shape[1] - width, axis=1)[:, -width:]
            out[start : start + chunk] = top.sum(axis=1) / n
        return out
