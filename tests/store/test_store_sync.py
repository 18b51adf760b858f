"""Incremental sync from a second database with its own schema, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, text
from sqlmodel import Session

from newsletter.config import SourceQueries
from newsletter.db import make_engine
from newsletter.models import Interaction, Subscriber
from newsletter.store.queries import count_rows
from newsletter.store.sync import SyncError, sync_source, validate_select

SHOP_SCHEMA = [
    "CREATE TABLE customers (cid INTEGER PRIMARY KEY, mail VARCHAR(200), tz VARCHAR(50),"
    " changed TIMESTAMP)",
    "CREATE TABLE products (sku VARCHAR(20) PRIMARY KEY, name VARCHAR(200), link VARCHAR(200),"
    " category VARCHAR(50), stock INTEGER, modified TIMESTAMP)",
    "CREATE TABLE events (id INTEGER PRIMARY KEY, cid INTEGER, sku VARCHAR(20),"
    " action VARCHAR(20), ts TIMESTAMP)",
]
QUERIES = {
    "subscribers": "SELECT 'c' || CAST(cid AS VARCHAR(20)) AS subscriber_key, mail AS email,"
    " tz AS timezone, changed AS updated_at FROM customers",
    "items": "SELECT sku AS item_key, name AS title, link AS url, category AS topics,"
    " stock AS in_stock, modified AS updated_at FROM products",
    "interactions": "SELECT 'c' || CAST(cid AS VARCHAR(20)) AS subscriber_key, sku AS item_key,"
    " action AS kind, ts AS occurred_at FROM events",
}
NOW = datetime(2026, 3, 1, tzinfo=UTC)


def _seed(source: Engine, first: bool) -> None:
    with source.begin() as connection:
        if first:
            for statement in SHOP_SCHEMA:
                connection.execute(text(statement))
            connection.execute(
                text(
                    "INSERT INTO customers VALUES (1, 'ann@example.com', 'Europe/Paris',"
                    " '2026-01-01 10:00:00'), (2, 'bob@example.com', 'UTC', '2026-01-02 10:00:00')"
                )
            )
            connection.execute(
                text(
                    "INSERT INTO products VALUES ('P1', 'Kettle', 'https://shop.example/p1',"
                    " 'kitchen', 3, '2026-01-01 00:00:00'), ('P2', 'Lamp', 'https://shop.example/p2',"
                    " 'home', 0, '2026-01-01 00:00:00')"
                )
            )
            connection.execute(
                text(
                    "INSERT INTO events VALUES (1, 1, 'P1', 'view', '2026-01-05 08:00:00'),"
                    " (2, 1, 'P1', 'purchase', '2026-01-05 08:05:00'),"
                    " (3, 2, 'P2', 'cart', '2026-01-06 09:00:00')"
                )
            )
        else:
            connection.execute(
                text(
                    "INSERT INTO events VALUES (4, 2, 'P1', 'view', '2026-01-07 07:00:00'),"
                    " (5, 2, 'P9', 'view', '2026-01-07 07:30:00')"
                )
            )
            connection.execute(
                text(
                    "UPDATE customers SET tz = 'Asia/Tokyo', changed = '2026-01-08 00:00:00'"
                    " WHERE cid = 2"
                )
            )


def test_second_sync_loads_only_new_rows(engine: Engine, source_urls: tuple[str, str]) -> None:
    owner_url, source_url = source_urls
    source = make_engine(owner_url)
    _seed(source, first=True)
    queries = SourceQueries(url=source_url, **QUERIES)
    first = {r.entity: r for r in sync_source(engine, name="shop", source=queries, now=NOW)}
    assert {e: (r.fetched, r.loaded) for e, r in first.items()} == {
        "subscribers": (2, 2),
        "items": (2, 2),
        "interactions": (3, 3),
    }
    assert count_rows(engine) == {"subscribers": 2, "items": 2, "interactions": 3}

    _seed(source, first=False)
    second = {r.entity: r for r in sync_source(engine, name="shop", source=queries, now=NOW)}
    assert {e: r.fetched for e, r in second.items()} == {
        "subscribers": 1,
        "items": 0,
        "interactions": 2,
    }
    assert [x.reason for x in second["interactions"].rejected] == ["unknown item_key 'P9'"]
    assert count_rows(engine) == {"subscribers": 2, "items": 2, "interactions": 4}
    with Session(engine) as session:
        bob = session.exec(select(Subscriber).where(Subscriber.external_key == "c2")).scalar_one()
        assert bob.timezone == "Asia/Tokyo"
        kinds = session.exec(select(Interaction.kind).order_by(Interaction.occurred_at)).all()
        assert [k[0] for k in kinds] == ["view", "purchase", "cart", "view"]

    third = sync_source(engine, name="shop", source=queries, now=NOW)
    assert [r.fetched for r in third] == [0, 0, 0]
    source.dispose()


@pytest.mark.parametrize(
    "query",
    [
        "UPDATE customers SET mail = 'x'",
        "SELECT 1; DROP TABLE customers",
        "DELETE FROM customers",
        "WITH x AS (DELETE FROM customers RETURNING *) SELECT * FROM x",
    ],
)
def test_writing_queries_are_refused(query: str) -> None:
    with pytest.raises(SyncError, match="source"):
        validate_select(query, where="source 'shop' subscribers query")


def test_sync_never_writes_to_the_source(sqlite_engine: Engine, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shop.db'}"
    source = make_engine(url)
    _seed(source, first=True)
    before = (tmp_path / "shop.db").stat().st_mtime_ns
    sync_source(sqlite_engine, name="shop", source=SourceQueries(url=url, **QUERIES), now=NOW)
    with source.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM events")).scalar_one() == 3
    assert (tmp_path / "shop.db").stat().st_mtime_ns == before
