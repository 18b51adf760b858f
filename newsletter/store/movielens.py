"""Import a MovieLens-format folder: movies become items, users subscribers, ratings interactions.

Genres become item topics; a movie's tags (all users') become its summary text, and its year
an attribute. Users get generated addresses at the reserved example domain. A movie's first
rating stands in for its publish date. Re-importing the same folder adds nothing twice.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

import pandas as pd
from sqlalchemy import Engine

from newsletter.progress import Tick, silent
from newsletter.store.frames import Frames, load_frames

REQUIRED_FILES = ("ratings.csv", "movies.csv")


class MovieLensError(ValueError):
    """The folder is not in MovieLens format; the message names the file and what is wrong."""


def _read(directory: Path, name: str, columns: list[str]) -> pd.DataFrame:
    path = directory / name
    try:
        frame = pd.read_csv(path)
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise MovieLensError(f"{path}: cannot read: {exc}") from exc
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise MovieLensError(f"{path}: missing column(s) {', '.join(missing)}")
    return frame


def read_movielens(directory: Path) -> Frames:
    """Read the CSV files into entity frames keyed by MovieLens ids (as text)."""
    for name in REQUIRED_FILES:
        if not (directory / name).is_file():
            raise MovieLensError(f"{directory}: no {name} (is this a MovieLens folder?)")
    ratings = _read(directory, "ratings.csv", ["userId", "movieId", "rating", "timestamp"])
    movies = _read(directory, "movies.csv", ["movieId", "title", "genres"])
    has_tags = (directory / "tags.csv").is_file()
    tags = _read(directory, "tags.csv", ["movieId", "tag"]) if has_tags else None
    return Frames(
        subscribers=_subscribers(ratings),
        items=_items(movies, ratings, tags),
        interactions=pd.DataFrame(
            {
                "subscriber_key": ratings["userId"].astype(str),
                "item_key": ratings["movieId"].astype(str),
                "kind": "rating",
                "occurred_at": pd.to_datetime(ratings["timestamp"], unit="s", utc=True),
                "value": ratings["rating"].astype(float),
            }
        ),
    )


def _subscribers(ratings: pd.DataFrame) -> pd.DataFrame:
    first = ratings.groupby("userId")["timestamp"].min()
    return pd.DataFrame(
        {
            "external_key": first.index.astype(str),
            "email": [f"user{u}@movielens.example.org" for u in first.index],
            "status": "active",
            "timezone": "UTC",
            "frequency": "weekly",
            "topics": [[] for _ in range(len(first))],
            "attributes": [{} for _ in range(len(first))],
            "created_at": pd.to_datetime(first.to_numpy(), unit="s", utc=True),
        }
    )


def _items(movies: pd.DataFrame, ratings: pd.DataFrame, tags: pd.DataFrame | None) -> pd.DataFrame:
    first = ratings.groupby("movieId")["timestamp"].min()
    tag_text: pd.Series = pd.Series(dtype=str)
    if tags is not None:
        tag_text = (
            tags.dropna(subset=["tag"])
            .groupby("movieId")["tag"]
            .agg(lambda s: ", ".join(dict.fromkeys(str(t).strip() for t in s)))
        )
    published = movies["movieId"].map(first)
    return pd.DataFrame(
        {
            "external_key": movies["movieId"].astype(str),
            "title": movies["title"].astype(str).str.slice(0, 500),
            "url": "https://movielens.org/movies/" + movies["movieId"].astype(str),
            "summary": movies["movieId"].map(tag_text).fillna(""),
            "topics": movies["genres"].fillna("").map(_genres),
            "attributes": movies["title"].map(_year_attribute),
            "published_at": pd.to_datetime(published, unit="s", utc=True),
            "active": True,
        }
    )


def _genres(text: str) -> list[str]:
    return [g for g in text.split("|") if g and g != "(no genres listed)"]


def _year_attribute(title: str) -> dict[str, int]:
    match = re.search(r"\((\d{4})\)\s*$", str(title))
    return {"year": int(match.group(1))} if match else {}


def import_movielens(
    engine: Engine, *, directory: Path, now: datetime, progress: Tick = silent
) -> dict[str, int]:
    """Read and load a MovieLens folder; returns the rows offered per entity."""
    progress("reading MovieLens", 0, None)
    frames = read_movielens(directory)
    return load_frames(engine, frames=frames, now=now, origin="movielens", progress=progress)
