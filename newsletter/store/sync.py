"""Incremental sync from a customer's own database through configured, read-only queries.

Each entity query (subscribers, items, interactions) is one SELECT returning the columns of
`newsletter.store.records`. A query that also returns its watermark column (`updated_at` for
subscribers and items, `occurred_at` for interactions) is synced incrementally: we remember the
largest value seen and next time fetch only rows above it. Without that column every sync
re-reads the whole result and upserts it, which is idempotent but slower.

Only a single SELECT (or WITH ... SELECT) statement is accepted, checked by parsing it
(`newsletter.store.readonly`); it runs in a read-only transaction with a deadline, one
statement per execute, and on PostgreSQL never as a superuser unless `allow_superuser`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from newsletter.config import SourceQueries
from newsletter.db import make_engine
from newsletter.models import SyncState
from newsletter.progress import Tick, silent
from newsletter.store import ingest
from newsletter.store.queries import count_rows
from newsletter.store.readonly import (
    GUARD,
    GUARD_PARAMS,
    QueryTimeout,
    SqlLimits,
    UnsafeQuery,
    check_select,
    read_only,
)
from newsletter.store.records import (
    RejectedRow,
    RowError,
    parse_time,
)

WATERMARKS = {"subscribers": "updated_at", "items": "updated_at", "interactions": "occurred_at"}
ENTITIES = ("subscribers", "items", "interactions")
BATCH_ROWS = 5000


class SyncError(ValueError):
    """A source or query problem the user must fix; the message names the source and entity."""


@dataclass
class EntitySync:
    """What one entity's sync fetched, loaded and rejected, and its new watermark."""

    entity: str
    fetched: int = 0
    loaded: int = 0
    rejected: list[RejectedRow] = field(default_factory=list)
    watermark: str | None = None
    new: int = 0  # rows the table did not hold before


def validate_select(query: str, *, where: str, dialect: str | None = None) -> str:
    """Accept one read-only SELECT/WITH statement; refuse writes and multiple statements."""
    try:
        return check_select(query, dialect=dialect)
    except UnsafeQuery as exc:
        raise SyncError(f"{where} {exc}") from exc


def _fetch(
    source: Engine, query: str, *, watermark_column: str, watermark: str | None, limits: SqlLimits
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run the query (filtered above the watermark when the column is there).

    The query text was checked by `validate_select`; every statement carries a bound
    parameter, so the driver sends exactly one statement per execute.
    """
    # the source URL names its own (read-only) role: no switch to the segments' reader role
    with read_only(source, limits=replace(limits, reader_role=None)) as connection:
        probe = connection.execute(
            text(f"SELECT * FROM ({query}) AS q WHERE {GUARD} AND 1 = 0"), GUARD_PARAMS
        )
        columns = list(probe.keys())
        sql = f"SELECT * FROM ({query}) AS q WHERE {GUARD}"
        params: dict[str, Any] = dict(GUARD_PARAMS)
        if watermark_column in columns and watermark is not None:
            sql += f" AND q.{watermark_column} > :wm"
            params["wm"] = watermark
        rows = [tuple(r) for r in connection.execute(text(sql), params)]
    return columns, rows


def _to_watermark(value: Any) -> str:
    """Keep the source's own value (as text), so the next query compares like with like."""
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def sync_entity(
    engine: Engine,
    *,
    source: Engine,
    name: str,
    entity: str,
    query: str,
    now: datetime,
    default_timezone: str = "UTC",
    limits: SqlLimits | None = None,
    progress: Tick = silent,
) -> EntitySync:
    """Fetch one entity above its watermark, load it, and move the watermark on."""
    where = f"source {name!r} {entity} query"
    query = validate_select(query, where=where, dialect=source.dialect.name)
    column = WATERMARKS[entity]
    with Session(engine) as session:
        state = session.get(SyncState, (name, entity))
        previous = state.watermark if state else None
    try:
        columns, rows = _fetch(
            source, query, watermark_column=column, watermark=previous, limits=limits or SqlLimits()
        )
    except (UnsafeQuery, QueryTimeout) as exc:
        raise SyncError(f"{where} {exc}") from exc
    except SQLAlchemyError as exc:
        raise SyncError(f"{where} failed: {str(getattr(exc, 'orig', exc))[:300]}") from exc
    report = EntitySync(entity=entity, fetched=len(rows), watermark=previous)
    parsed: list[tuple[int, dict[str, Any]]] = []
    for number, row in enumerate(rows, start=1):
        try:
            raw = dict(zip(columns, row, strict=True))
            parsed.append(
                (number, ingest.parse_row(entity, raw, default_timezone=default_timezone))
            )
        except RowError as exc:
            report.rejected.append(RejectedRow(where, number, str(exc)))
    if column in columns and rows:
        index = columns.index(column)
        dated = [(parse_time(r[index], column), r[index]) for r in rows if r[index] is not None]
        if dated:
            report.watermark = _to_watermark(max(dated, key=lambda pair: pair[0])[1])
    stage, before = f"syncing {name}.{entity}", count_rows(engine)[entity]
    progress(stage, 0, len(rows))
    with engine.begin() as connection:
        for start in range(0, len(parsed), BATCH_ROWS):
            batch = parsed[start : start + BATCH_ROWS]
            loaded, rejected = ingest.write_batch(
                connection, entity=entity, rows=batch, source=where, now=now, origin="sync"
            )
            report.loaded += loaded
            report.rejected.extend(rejected)
            progress(stage, min(len(rows), start + BATCH_ROWS), len(rows))
        _save_state(connection, name, entity, report, now)
    progress(stage, len(rows), len(rows))
    report.new = count_rows(engine)[entity] - before
    return report


def _save_state(
    connection: Connection, name: str, entity: str, report: EntitySync, now: datetime
) -> None:
    with Session(bind=connection) as session:
        state = session.get(SyncState, (name, entity)) or SyncState(
            source=name, entity=entity, updated_at=now
        )
        state.watermark = report.watermark
        state.rows_loaded = (state.rows_loaded or 0) + report.loaded
        state.updated_at = now
        session.add(state)
        session.flush()


def sync_source(
    engine: Engine,
    *,
    name: str,
    source: SourceQueries,
    now: datetime,
    default_timezone: str = "UTC",
    limits: SqlLimits | None = None,
    progress: Tick = silent,
) -> list[EntitySync]:
    """Sync every configured entity of one source, subscribers and items first."""
    source_engine = make_engine(source.url)
    try:
        reports = []
        for entity in ENTITIES:
            query = getattr(source, entity)
            if query:
                reports.append(
                    sync_entity(
                        engine,
                        source=source_engine,
                        name=name,
                        entity=entity,
                        query=query,
                        now=now,
                        default_timezone=default_timezone,
                        limits=limits,
                        progress=progress,
                    )
                )
        return reports
    finally:
        source_engine.dispose()
