"""Read a CSV file row by row so that one bad row costs only itself, each named by its line.

* Encoding: UTF-8 (with or without BOM). A file that is not UTF-8 but reads as Windows-1252
  (which includes Latin-1's letters) is read as such, and `CsvFile.encoding` says so. Any other
  file (binary junk) is read line by line: lines that are not UTF-8 are refused one by one.
* A field longer than `MAX_FIELD_CHARS` refuses its row (``csv`` itself would stop the file).
* An unbalanced quote: a record that runs over several lines and then does not have the
  header's number of fields, or a quote still open at the end of the file, refuses the line
  the quote opened on, and reading starts again on the next line, so the rows it would have
  swallowed still load.

    read_csv(path) -> CsvFile(header, rows, problems, encoding)
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

MAX_FIELD_CHARS = 100_000
_CSV_FIELD_LIMIT = 64 * 1024 * 1024  # what csv may read before we judge the field ourselves
Row = tuple[int, dict[str, str | None]]  # (line where the record starts, values by column)


@dataclass
class CsvFile:
    """A file's header, its good rows by line, and its bad lines with the reason."""

    header: list[str]
    rows: list[Row] = field(default_factory=list)
    problems: list[tuple[int, str]] = field(default_factory=list)
    encoding: str = "utf-8"


def _decode(data: bytes) -> tuple[list[str], list[tuple[int, str]], str]:
    """The file's lines (endings kept), undecodable lines as problems, and the encoding."""
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        if encoding == "utf-8-sig" or "\x00" not in text:
            return list(io.StringIO(text, newline="")), [], encoding.removesuffix("-sig")
    lines, problems = [], []
    for number, raw in enumerate(io.BytesIO(data), start=1):
        try:
            lines.append(raw.decode("utf-8-sig" if number == 1 else "utf-8"))
        except UnicodeDecodeError as exc:
            lines.append("\n")  # keeps the line numbers; the blank line is skipped
            problems.append(
                (number, f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at column {exc.start + 1})")
            )
    return lines, problems, "utf-8 (with undecodable lines)"


def _records(lines: list[str], width: int) -> Iterator[tuple[int, list[str] | str]]:
    """(line, fields) for every record after the header, or (line, reason) for a bad one."""
    start_index = 1
    while start_index < len(lines):
        reader = csv.reader(iter(lines[start_index:]), strict=True)
        before = 0
        try:
            for fields in reader:
                first = start_index + before  # 0-based index of the record's first line
                span, before = reader.line_num - before, reader.line_num
                if span > 1 and len(fields) != width:
                    yield (
                        first + 1,
                        (
                            f"unbalanced quote: the row runs over {span} lines and has "
                            f"{len(fields)} fields, the header has {width}"
                        ),
                    )
                    start_index = first + 1
                    break
                if fields:
                    yield first + 1, fields
            else:
                return
        except csv.Error as exc:
            first = start_index + before
            reason = "a quote is never closed" if "end of data" in str(exc) else str(exc)
            yield first + 1, f"{reason} (the line is skipped; reading goes on after it)"
            start_index = first + 1


def read_csv(path: Path) -> CsvFile:
    """Read `path` (see the module notes); the header is line 1."""
    csv.field_size_limit(max(csv.field_size_limit(), _CSV_FIELD_LIMIT))
    lines, problems, encoding = _decode(path.read_bytes())
    header_fields = next(csv.reader(lines[:1]), []) if lines else []
    header = [h.strip() for h in header_fields]
    result = CsvFile(header=header, problems=problems, encoding=encoding)
    for line, record in _records(lines, len(header)):
        if isinstance(record, str):
            result.problems.append((line, record))
            continue
        long = next((i for i, v in enumerate(record) if len(v) > MAX_FIELD_CHARS), None)
        if long is not None:
            name = header[long] if long < len(header) else f"column {long + 1}"
            size = len(record[long])
            result.problems.append(
                (line, f"field {name!r} is {size:,} characters; the limit is {MAX_FIELD_CHARS:,}")
            )
            continue
        values: dict[str, str | None] = dict.fromkeys(header)
        values.update(zip(header, record, strict=False))
        result.rows.append((line, values))
    result.problems.sort()
    return result
