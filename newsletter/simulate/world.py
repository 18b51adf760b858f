"""A synthetic publisher: topics, articles, subscribers with tastes, and behaviour drawn from them.

Used by the demo, the tests and the benchmarks. Everything is vectorised with numpy and
seeded, so the same arguments always give the same world, and it scales to 1M subscribers.
The hidden tastes (`World.preferences`) are kept, so simulations can draw realistic feedback
and tests can check that recommendations follow them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from newsletter.store.frames import Frames

TOPICS: dict[str, list[str]] = {
    "politics": ["election", "parliament", "minister", "policy", "vote", "coalition", "reform"],
    "economy": ["inflation", "markets", "jobs", "interest rates", "trade", "budget", "growth"],
    "technology": ["AI", "chips", "startups", "software", "privacy", "robots", "smartphones"],
    "science": ["telescope", "genome", "climate model", "particles", "fossils", "vaccines"],
    "climate": ["heatwave", "emissions", "solar power", "floods", "glaciers", "wind farms"],
    "health": ["sleep", "nutrition", "hospitals", "exercise", "mental health", "allergies"],
    "sports": ["football", "marathon", "tennis", "cycling", "transfer", "championship"],
    "culture": ["museum", "novel", "festival", "theatre", "painting", "architecture"],
    "film": ["director", "premiere", "streaming", "box office", "documentary", "sequel"],
    "food": ["recipes", "bakery", "street food", "wine", "vegetarian", "restaurants"],
    "travel": ["rail journeys", "islands", "city breaks", "hiking", "airports", "hotels"],
    "education": ["schools", "universities", "teachers", "exams", "tuition", "apprenticeships"],
}
TITLE_PATTERNS = [
    "What {a} means for {b}",
    "The quiet revolution in {a}",
    "Why {a} and {b} are colliding",
    "{A}: five things to know this week",
    "Inside the new era of {a}",
    "How {a} is changing {b}",
    "The surprising economics of {a}",
    "A field guide to {a}",
]
TIMEZONES = [
    "Europe/London",
    "Europe/Berlin",
    "Europe/Paris",
    "Europe/Madrid",
    "America/New_York",
    "America/Chicago",
    "America/Los_Angeles",
    "America/Sao_Paulo",
    "Asia/Tokyo",
    "Asia/Kolkata",
    "Australia/Sydney",
    "Africa/Johannesburg",
    "UTC",
]
KINDS = np.array(["view", "read", "click", "like"])
KIND_SHARES = np.array([0.55, 0.3, 0.1, 0.05])


@dataclass(frozen=True)
class World:
    """Generated entity frames plus the hidden truth behind them."""

    frames: Frames
    topics: list[str]
    preferences: np.ndarray  # subscribers x topics, rows sum to 1
    item_topic: np.ndarray  # primary topic index per item


def _items(
    rng: np.random.Generator, n_items: int, now: datetime, weeks: int
) -> tuple[pd.DataFrame, np.ndarray]:
    names = list(TOPICS)
    primary = rng.integers(0, len(names), n_items)
    secondary = (primary + rng.integers(1, len(names), n_items)) % len(names)
    pattern = rng.integers(0, len(TITLE_PATTERNS), n_items)
    word_a = rng.integers(0, 1000, n_items)
    word_b = rng.integers(0, 1000, n_items)
    titles, summaries, topics = [], [], []
    for i in range(n_items):
        vocab_a, vocab_b = TOPICS[names[primary[i]]], TOPICS[names[secondary[i]]]
        a, b = vocab_a[word_a[i] % len(vocab_a)], vocab_b[word_b[i] % len(vocab_b)]
        titles.append(TITLE_PATTERNS[pattern[i]].format(a=a, b=b, A=a[:1].upper() + a[1:]))
        extra = vocab_a[(word_a[i] + 3) % len(vocab_a)]
        summaries.append(
            f"Our {names[primary[i]]} desk looks at {a}, {extra} and what {b} has to do with it."
        )
        topics.append(
            [names[primary[i]], names[secondary[i]]] if i % 3 == 0 else [names[primary[i]]]
        )
    age = rng.uniform(0, weeks * 7 * 86400, n_items)
    ids = np.arange(1, n_items + 1)
    return pd.DataFrame(
        {
            "external_key": [f"article-{i}" for i in ids],
            "title": titles,
            "url": [
                f"https://news.example.com/{names[t]}/{i}"
                for t, i in zip(primary, ids, strict=True)
            ],
            "summary": summaries,
            "image_url": [f"https://img.example.com/articles/{i}.jpg" for i in ids],
            "topics": topics,
            "attributes": [{} for _ in ids],
            "published_at": pd.Timestamp(now) - pd.to_timedelta(age, unit="s"),
            "active": True,
        }
    ), primary


def _subscribers(
    rng: np.random.Generator, n: int, now: datetime
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    n_topics = len(TOPICS)
    preferences = rng.dirichlet(np.full(n_topics, 0.3), n)
    activity = rng.lognormal(mean=0.0, sigma=0.8, size=n)
    top = np.argsort(-preferences, axis=1)[:, :2]
    names = np.array(list(TOPICS))
    ids = np.arange(1, n + 1)
    frame = pd.DataFrame(
        {
            "external_key": [f"reader-{i}" for i in ids],
            "email": [f"reader{i}@example.com" for i in ids],
            "name": [f"Reader {i}" for i in ids],
            "status": "active",
            "timezone": np.array(TIMEZONES)[rng.integers(0, len(TIMEZONES), n)],
            "frequency": "weekly",
            "topics": [list(row) for row in names[top]],
            "attributes": [{} for _ in ids],
            "created_at": pd.Timestamp(now) - pd.to_timedelta(rng.uniform(7, 400, n), unit="D"),
        }
    )
    return frame, preferences, activity


def _interactions(
    rng: np.random.Generator,
    *,
    preferences: np.ndarray,
    activity: np.ndarray,
    item_topic: np.ndarray,
    item_age: np.ndarray,
    n_interactions: int,
    now: datetime,
) -> pd.DataFrame:
    """Draw (subscriber, item, kind, time) rows: topic from taste, item by popularity in topic."""
    users = rng.choice(len(activity), n_interactions, p=activity / activity.sum())
    cumulative = preferences.cumsum(axis=1)
    topic = (cumulative[users] < rng.random(n_interactions)[:, None]).sum(axis=1)
    topic = np.minimum(topic, preferences.shape[1] - 1)
    order = np.argsort(item_topic, kind="stable")
    starts = np.searchsorted(item_topic[order], np.arange(preferences.shape[1] + 1))
    sizes = np.maximum(starts[1:] - starts[:-1], 1)
    rank = np.floor(sizes[topic] * rng.random(n_interactions) ** 2.5).astype(np.int64)
    items = order[np.minimum(starts[topic] + rank, len(order) - 1)]
    delay = rng.random(n_interactions) * item_age[items]
    kinds = KINDS[rng.choice(len(KINDS), n_interactions, p=KIND_SHARES)]
    frame = pd.DataFrame(
        {
            "subscriber_key": pd.Series(users + 1).map("reader-{}".format),
            "item_key": pd.Series(items + 1).map("article-{}".format),
            "kind": kinds,
            "occurred_at": pd.Timestamp(now) - pd.to_timedelta(item_age[items] - delay, unit="s"),
            "value": np.nan,
        }
    )
    return frame.drop_duplicates(subset=["subscriber_key", "item_key", "kind", "occurred_at"])


def generate_world(
    *,
    subscribers: int = 2000,
    items: int = 500,
    interactions: int = 40000,
    weeks: int = 8,
    now: datetime,
    seed: int = 7,
) -> World:
    """Generate a seeded synthetic world whose newest item is no newer than `now`."""
    if min(subscribers, items) < 1 or interactions < 0:
        raise ValueError("a world needs at least one subscriber and one item")
    rng = np.random.default_rng(seed)
    item_frame, item_topic = _items(rng, items, now, weeks)
    subscriber_frame, preferences, activity = _subscribers(rng, subscribers, now)
    item_age = (pd.Timestamp(now) - item_frame["published_at"]).dt.total_seconds().to_numpy()
    interaction_frame = _interactions(
        rng,
        preferences=preferences,
        activity=activity,
        item_topic=item_topic,
        item_age=np.maximum(item_age, 60.0),
        n_interactions=interactions,
        now=now,
    )
    return World(
        frames=Frames(subscriber_frame, item_frame, interaction_frame),
        topics=list(TOPICS),
        preferences=preferences,
        item_topic=item_topic,
    )


def world_now(days_ago: int = 0) -> datetime:
    """A fixed reference time for reproducible demos and tests (not the clock)."""
    from datetime import UTC

    return datetime(2026, 11, 23, 6, 0, tzinfo=UTC) - timedelta(days=days_ago)
