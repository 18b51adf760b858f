"""Fixtures for the store tests: a second database standing for a customer's own data."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from testsupport import postgres_source_schema


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def source_urls(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A second database (SQLite file or PostgreSQL schema) for a shop's tables: the URL to
    seed it and the URL to sync from (on PostgreSQL a read-only login role)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'shop.db'}"
        yield url, url
        return
    with postgres_source_schema() as urls:
        yield urls
