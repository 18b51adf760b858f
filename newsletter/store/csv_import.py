"""Import plain subscriber, item and interaction CSV files, reporting every bad row by line.

Good rows load even when others in the same file are bad: the file is read by
`newsletter.store.csv_read` (encoding, huge fields, unbalanced quotes, each refused by its own
line), every row is checked for what the database would refuse (`store.storable`), and rows
are written in batches, each in its own transaction; should the database still refuse a
batch, it is written again row by row, so only the offending row is lost. Column contracts:
see `newsletter.store.records`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from newsletter.progress import Tick, silent
from newsletter.store.csv_read import read_csv
from newsletter.store.ingest import parse_row, write_batch
from newsletter.store.queries import count_rows
from newsletter.store.records import REQUIRED, RejectedRow, RowError

BATCH_ROWS = 5000


@dataclass
class EntityReport:
    """What happened to one file: rows read, rows loaded, rows rejected (with reasons)."""

    entity: str
    source: str
    read: int = 0
    loaded: int = 0  # rows written (inserted or updated; interactions already stored count)
    rejected: list[RejectedRow] = field(default_factory=list)
    encoding: str = "utf-8"
    new: int = 0  # rows the table did not hold before


@dataclass
class ImportReport:
    """The outcome of an import, one entry per entity."""

    entities: list[EntityReport] = field(default_factory=list)

    @property
    def rejected(self) -> list[RejectedRow]:
        return [r for e in self.entities for r in e.rejected]

    def as_dict(self) -> dict[str, Any]:
        return {
            e.entity: {
                "read": e.read,
                "loaded": e.loaded,
                "new": e.new,
                "rejected": len(e.rejected),
            }
            | ({"encoding": e.encoding} if e.encoding != "utf-8" else {})
            for e in self.entities
        }


def _check_header(path: Path, entity: str, header: list[str]) -> None:
    missing = [c for c in REQUIRED[entity] if c not in header]
    if missing:
        raise RowError(
            f"{path}:1: missing column(s) {', '.join(missing)}; "
            f"{entity} files need {', '.join(REQUIRED[entity])}"
        )


def _line_count(path: Path) -> int:
    """Data lines of a file (an estimate when quoted fields span lines), for progress."""
    lines = 0
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            lines += chunk.count(b"\n")
    return max(0, lines - 1)


def _import_file(
    engine: Engine,
    path: Path,
    *,
    entity: str,
    now: datetime,
    default_timezone: str,
    progress: Tick = silent,
) -> EntityReport:
    """Parse a file row by row and write it batch by batch."""
    report = EntityReport(entity=entity, source=str(path))
    stage, total = f"importing {entity}", _line_count(path)
    progress(stage, 0, total)
    parsed = read_csv(path)
    _check_header(path, entity, parsed.header)
    report.encoding = parsed.encoding
    report.read = len(parsed.problems)
    report.rejected.extend(RejectedRow(str(path), line, why) for line, why in parsed.problems)
    batch: list[tuple[int, dict[str, Any]]] = []
    for line, raw in parsed.rows:
        report.read += 1
        try:
            batch.append((line, parse_row(entity, raw, default_timezone=default_timezone)))
        except RowError as exc:
            report.rejected.append(RejectedRow(str(path), line, str(exc)))
        if len(batch) >= BATCH_ROWS:
            _write_batch(engine, batch, report, now)
            batch = []
            progress(stage, report.read, max(total, report.read))
    _write_batch(engine, batch, report, now)
    progress(stage, report.read, report.read)
    report.rejected.sort(key=lambda r: r.line)
    return report


def _write_batch(
    engine: Engine, batch: list[tuple[int, dict[str, Any]]], report: EntityReport, now: datetime
) -> None:
    if not batch:
        return
    try:
        with engine.begin() as connection:
            loaded, rejected = write_batch(
                connection,
                entity=report.entity,
                rows=batch,
                source=report.source,
                now=now,
                origin="import",
            )
    except SQLAlchemyError as exc:
        if len(batch) > 1:  # the database refused something unforeseen: find it row by row
            for row in batch:
                _write_batch(engine, [row], report, now)
            return
        detail = str(getattr(exc, "orig", None) or exc)
        reason = f"not loaded: {detail.splitlines()[0][:300]}"
        report.rejected.append(RejectedRow(report.source, batch[0][0], reason))
        return
    report.loaded += loaded
    report.rejected.extend(rejected)


def import_csv(
    engine: Engine,
    *,
    subscribers: Path | None = None,
    items: Path | None = None,
    interactions: Path | None = None,
    now: datetime,
    default_timezone: str = "UTC",
    progress: Tick = silent,
) -> ImportReport:
    """Import whichever files are given, subscribers and items before interactions.

    Each entity's ``new`` counts the rows its table gained (a re-import adds none).
    """
    report = ImportReport()
    files = (("subscribers", subscribers), ("items", items), ("interactions", interactions))
    for entity, path in files:
        if path is not None:
            before = count_rows(engine)[entity]
            done = _import_file(
                engine,
                path,
                entity=entity,
                now=now,
                default_timezone=default_timezone,
                progress=progress,
            )
            done.new = count_rows(engine)[entity] - before
            report.entities.append(done)
    return report
