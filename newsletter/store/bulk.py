"""Fast bulk loading of data frames: COPY on PostgreSQL, one executemany on SQLite.

Used for large, already-validated loads (synthetic worlds, MovieLens, benchmarks). Rows that
collide with an existing unique key are skipped, never duplicated, so a repeated load is safe.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import pandas as pd
from psycopg.copy import QueuedLibpqWriter
from sqlalchemy import Connection, ForeignKeyConstraint, Table, UniqueConstraint
from sqlalchemy.schema import AddConstraint, CreateIndex, DropConstraint, DropIndex
from sqlmodel import SQLModel

import newsletter.models  # noqa: F401  (registers the tables in SQLModel.metadata)

SQLITE_TIME_SEPARATOR, SQLITE_TIME_SUFFIX = " ", ""  # what SQLAlchemy writes on SQLite
PG_TIME_SEPARATOR, PG_TIME_SUFFIX = "T", "Z"
COPY_CHUNK_ROWS = 200_000
REBUILD_INDEXES_ROWS = 100_000  # from this many rows on, rebuilding indexes beats maintaining


def _json_column(values: pd.Series) -> pd.Series:
    return values.map(lambda v: json.dumps(v if v is not None else None, default=str))


def _format_times(series: pd.Series, separator: str, suffix: str) -> pd.Series:
    """UTC timestamps as text, formatted in C by numpy (pandas strftime is 10x slower)."""
    utc = pd.to_datetime(series, utc=True)
    values = utc.dt.tz_localize(None).to_numpy(dtype="datetime64[us]")
    if separator == "T" and suffix == "Z":  # ISO 8601 in UTC: numpy writes it whole
        text = np.datetime_as_string(values, unit="us", timezone="UTC").astype(object)
    else:
        text = np.datetime_as_string(values, unit="us").astype(object)
        text = np.array([t.replace("T", separator) + suffix for t in text], dtype=object)
    return pd.Series(text, index=series.index, dtype=object).where(utc.notna(), None)


def _prepare(
    frame: pd.DataFrame, *, separator: str, suffix: str, json_columns: Sequence[str]
) -> pd.DataFrame:
    """Convert a frame to the text form the database expects (UTC times, JSON strings)."""
    out = frame.copy()
    for column in out.columns:
        series = out[column]
        if column in json_columns:
            out[column] = _json_column(series)
        elif pd.api.types.is_datetime64_any_dtype(series.dtype):
            out[column] = _format_times(series, separator, suffix)
    return out


def bulk_insert(
    connection: Connection,
    *,
    table: str,
    frame: pd.DataFrame,
    json_columns: Sequence[str] = (),
    ignore_conflicts: bool = True,
) -> None:
    """Insert every row of `frame` into `table` (column names = frame columns)."""
    if frame.empty:
        return
    if connection.dialect.name == "postgresql":
        _copy_postgres(connection, table, frame, json_columns, ignore_conflicts)
    else:
        _executemany_sqlite(connection, table, frame, json_columns, ignore_conflicts)


def _executemany_sqlite(
    connection: Connection,
    table: str,
    frame: pd.DataFrame,
    json_columns: Sequence[str],
    ignore_conflicts: bool,
) -> None:
    prepared = _prepare(
        frame, separator=SQLITE_TIME_SEPARATOR, suffix=SQLITE_TIME_SUFFIX, json_columns=json_columns
    )
    columns = ", ".join(f'"{c}"' for c in prepared.columns)
    marks = ", ".join("?" for _ in prepared.columns)
    verb = "INSERT OR IGNORE" if ignore_conflicts else "INSERT"
    columns_as_lists = [
        prepared[c].astype(object).where(prepared[c].notna(), None).tolist() for c in prepared
    ]
    cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.executemany(
            f'{verb} INTO "{table}" ({columns}) VALUES ({marks})',
            zip(*columns_as_lists, strict=True),
        )
    finally:
        cursor.close()


def _copy_postgres(
    connection: Connection,
    table: str,
    frame: pd.DataFrame,
    json_columns: Sequence[str],
    ignore_conflicts: bool,
) -> None:
    """COPY the rows in; duplicates of existing or earlier rows are skipped.

    Three paths: a large load into an empty table goes straight in with its indexes dropped
    and rebuilt (duplicates removed in pandas first); a large load into a filled table goes
    through a staging table with the indexes dropped; a small one through a staging table and
    ON CONFLICT DO NOTHING.
    """
    model_table = SQLModel.metadata.tables[table]
    large = len(frame) >= REBUILD_INDEXES_ROWS
    if large and _is_empty(connection, table):
        key = _unique_columns(model_table) if ignore_conflicts else []
        rows = frame.drop_duplicates(subset=key) if key else frame
        with _indexes_dropped(connection, model_table):
            _copy_frame(connection, f'"{table}"', _prepare_pg(rows, json_columns))
        return
    prepared = _prepare_pg(frame, json_columns)
    columns = ", ".join(f'"{c}"' for c in prepared.columns)
    stage = f'"_stage_{table}"'
    connection.exec_driver_sql(
        f'CREATE TEMP TABLE {stage} AS SELECT {columns} FROM "{table}" WITH NO DATA'
    )
    _copy_frame(connection, stage, prepared)
    if large:
        with _indexes_dropped(connection, model_table):
            _move_rows(connection, model_table, stage, list(prepared.columns), ignore_conflicts)
    else:
        conflict = " ON CONFLICT DO NOTHING" if ignore_conflicts else ""
        connection.exec_driver_sql(
            f'INSERT INTO "{table}" ({columns}) SELECT {columns} FROM {stage}{conflict}'
        )
    connection.exec_driver_sql(f"DROP TABLE {stage}")


def _prepare_pg(frame: pd.DataFrame, json_columns: Sequence[str]) -> pd.DataFrame:
    return _prepare(
        frame, separator=PG_TIME_SEPARATOR, suffix=PG_TIME_SUFFIX, json_columns=json_columns
    )


def _is_empty(connection: Connection, table: str) -> bool:
    return connection.exec_driver_sql(f'SELECT 1 FROM "{table}" LIMIT 1').first() is None


def _copy_frame(connection: Connection, target: str, prepared: pd.DataFrame) -> None:
    """Stream a prepared frame into `target` with COPY ... FROM STDIN (CSV, in chunks)."""
    columns = ", ".join(f'"{c}"' for c in prepared.columns)
    raw = connection.connection.driver_connection
    with raw.cursor() as cursor:  # type: ignore[union-attr]
        copy_sql = f"COPY {target} ({columns}) FROM STDIN WITH (FORMAT csv, NULL '\\N')"
        # A writer thread sends each chunk while the next one is formatted (overlaps the
        # server's parsing with our CSV formatting).
        with cursor.copy(copy_sql, writer=QueuedLibpqWriter(cursor)) as copy:
            for start in range(0, len(prepared), COPY_CHUNK_ROWS):
                buffer = io.StringIO()
                prepared.iloc[start : start + COPY_CHUNK_ROWS].to_csv(
                    buffer, header=False, index=False, na_rep="\\N"
                )
                copy.write(buffer.getvalue())


def _unique_columns(table: Table) -> list[str]:
    """The natural key rows are deduplicated on: the first unique constraint of required
    columns (a nullable one, like an optional idempotency key, never clashes on NULL, so it is
    no natural key), else a primary key made of real columns (a surrogate `id` is never in
    the loaded frame)."""
    for constraint in table.constraints:
        if not isinstance(constraint, UniqueConstraint):
            continue
        if not any(c.nullable for c in constraint.columns):
            return [c.name for c in constraint.columns]
    key = [c.name for c in table.primary_key.columns]
    return [] if key == ["id"] else key


def _move_rows(
    connection: Connection, table: Table, stage: str, columns: list[str], ignore_conflicts: bool
) -> None:
    """Insert staged rows that are new (by the table's unique key), with no index in the way."""
    names = ", ".join(f'"{c}"' for c in columns)
    key = _unique_columns(table) if ignore_conflicts else []
    if not key:
        connection.exec_driver_sql(
            f'INSERT INTO "{table.name}" ({names}) SELECT {names} FROM {stage}'
        )
        return
    key_list = ", ".join(f's."{c}"' for c in key)
    matches = " AND ".join(f't."{c}" = s."{c}"' for c in key)
    selected = ", ".join(f's."{c}"' for c in columns)
    connection.exec_driver_sql(
        f'INSERT INTO "{table.name}" ({names}) SELECT DISTINCT ON ({key_list}) {selected} '
        f'FROM {stage} AS s WHERE NOT EXISTS (SELECT 1 FROM "{table.name}" AS t WHERE {matches})'
    )


@contextmanager
def _indexes_dropped(connection: Connection, table: Table) -> Iterator[None]:
    """Drop secondary indexes, unique and foreign keys, then rebuild them in one pass each.

    Maintaining four B-trees and two foreign-key triggers row by row makes a large load
    several times slower than building them afterwards (measured: 37 s against 6 s for 400k
    interactions). The whole swap happens inside the caller's transaction.
    """
    constraints = [
        c for c in table.constraints if isinstance(c, UniqueConstraint | ForeignKeyConstraint)
    ]
    indexes = list(table.indexes)
    connection.exec_driver_sql("SET LOCAL maintenance_work_mem = '256MB'")
    for index in indexes:
        connection.execute(DropIndex(index))
    for constraint in constraints:
        connection.execute(DropConstraint(constraint))
    yield
    for constraint in constraints:
        if isinstance(constraint, UniqueConstraint):
            connection.execute(AddConstraint(constraint))
    for index in indexes:
        connection.execute(CreateIndex(index))
    for constraint in constraints:
        if isinstance(constraint, ForeignKeyConstraint):
            connection.execute(AddConstraint(constraint))
