"""CSV files with values the database refuses, odd encodings, huge fields and broken quotes:
on SQLite and PostgreSQL every good row loads and each bad row is named by its own line."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from sqlmodel import Session

from newsletter.models import Interaction, Item, Subscriber
from newsletter.store import csv_import
from newsletter.store.csv_import import import_csv

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
HEADER = "subscriber_key,email,name\n"


def _count(engine: Engine, model: type) -> int:
    with engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(model)).scalar_one())


def _rows(n: int, start: int = 1) -> list[str]:
    return [f"s{i},reader{i}@example.com,Reader {i}\n" for i in range(start, start + n)]


def test_one_bad_key_or_nul_costs_only_its_own_line(engine: Engine, tmp_path: Path) -> None:
    lines = _rows(12_000)
    lines[3000] = f"{'k' * 201},long@example.com,Too Long\n"  # file line 3002
    lines[6998] = "s7000,nul@example.com,Nul\x00Byte\n"  # file line 7000
    lines[9998] = "s\x009999,nulkey@example.com,Key\n"  # file line 10000
    path = tmp_path / "subscribers.csv"
    path.write_text(HEADER + "".join(lines), encoding="utf-8")
    report = import_csv(engine, subscribers=path, now=NOW)
    assert [(r.line, r.reason.split(" ")[0]) for r in report.rejected] == [
        (3002, "key"),
        (7000, "name"),
        (10000, "key"),
    ]
    assert "the limit is 200" in report.rejected[0].reason
    assert "NUL" in report.rejected[1].reason
    assert str(report.rejected[0]).startswith(f"{path}:3002:")
    subscribers = report.as_dict()["subscribers"]
    assert subscribers == {"read": 12_000, "loaded": 11_997, "new": 11_997, "rejected": 3}
    assert _count(engine, Subscriber) == 11_997


def test_a_latin_1_file_is_read_as_such_and_every_row_loads(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "subscribers.csv"
    text = HEADER + "s1,jose@example.com,José Müller\ns2,ana@example.com,Ana\n"
    path.write_bytes(text.encode("latin-1"))
    report = import_csv(engine, subscribers=path, now=NOW)
    assert report.rejected == []
    assert report.as_dict()["subscribers"]["encoding"] == "cp1252"
    with Session(engine) as session:
        names = session.exec(select(Subscriber.name).order_by(Subscriber.external_key)).all()
    assert [n[0] for n in names] == ["José Müller", "Ana"]


def test_binary_junk_lines_are_refused_one_by_one(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "subscribers.csv"
    junk = bytes(range(256)).replace(b"\n", b"").replace(b"\r", b"")
    good = "".join(_rows(3)).encode()
    path.write_bytes(HEADER.encode() + good[:60] + junk + b"\n" + good + b"\xff\xfe\x00\x81\n")
    report = import_csv(engine, subscribers=path, now=NOW)
    lines = [r.line for r in report.rejected]
    assert lines and all("UTF-8" in r.reason for r in report.rejected)
    assert lines == sorted(set(lines))
    assert _count(engine, Subscriber) >= 3
    with Session(engine) as session:
        keys = {k[0] for k in session.exec(select(Subscriber.external_key)).all()}
    assert {"s1", "s2", "s3"} <= keys


def test_a_2_mb_field_names_its_file_and_line(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "items.csv"
    big = "x" * (2 * 1024 * 1024)
    path.write_text(
        "item_key,title,url,summary\n"
        "i1,One,https://example.com/1,short\n"
        f"i2,Two,https://example.com/2,{big}\n"
        "i3,Three,https://example.com/3,short\n",
        encoding="utf-8",
    )
    report = import_csv(engine, items=path, now=NOW)
    [bad] = report.rejected
    assert str(bad).startswith(f"{path}:3: field 'summary' is 2,097,152 characters")
    assert _count(engine, Item) == 2


def test_an_unclosed_quote_refuses_its_line_and_the_rows_after_it_load(
    engine: Engine, tmp_path: Path
) -> None:
    path = tmp_path / "subscribers.csv"
    lines = _rows(6)
    lines[2] = 's3,"bad@example.com,Never Closed\n'  # file line 4
    path.write_text(HEADER + "".join(lines), encoding="utf-8")
    report = import_csv(engine, subscribers=path, now=NOW)
    assert [(r.line, "quote" in r.reason) for r in report.rejected] == [(4, True)]
    assert _count(engine, Subscriber) == 5


def test_a_quote_closed_rows_later_refuses_only_where_it_opened(
    engine: Engine, tmp_path: Path
) -> None:
    path = tmp_path / "subscribers.csv"
    lines = _rows(8)
    lines[1] = 's2,"two@example.com,Open\n'  # file line 3
    lines[5] = 's6,six@example.com,"Quoted, Name"\n'  # a good quoted field later
    path.write_text(HEADER + "".join(lines), encoding="utf-8")
    report = import_csv(engine, subscribers=path, now=NOW)
    assert [r.line for r in report.rejected] == [3]
    assert _count(engine, Subscriber) == 7


def test_a_legit_multi_line_field_still_loads(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "items.csv"
    path.write_text(
        'item_key,title,url,summary\ni1,One,https://example.com/1,"two\nlines"\n'
        "i2,Two,https://example.com/2,x\n",
        encoding="utf-8",
    )
    report = import_csv(engine, items=path, now=NOW)
    assert report.rejected == [] and _count(engine, Item) == 2


def test_interaction_keys_with_nul_refuse_only_their_row(engine: Engine, tmp_path: Path) -> None:
    subscribers = tmp_path / "subscribers.csv"
    subscribers.write_text(HEADER + "".join(_rows(2)), encoding="utf-8")
    items = tmp_path / "items.csv"
    items.write_text("item_key,title,url\ni1,One,https://example.com/1\n", encoding="utf-8")
    interactions = tmp_path / "interactions.csv"
    interactions.write_text(
        "subscriber_key,item_key,kind,occurred_at\n"
        "s1,i1,view,2026-02-01\ns2,i\x001,view,2026-02-01\ns2,i1,read,2026-02-02\n",
        encoding="utf-8",
    )
    report = import_csv(
        engine, subscribers=subscribers, items=items, interactions=interactions, now=NOW
    )
    assert [(r.line, "NUL" in r.reason) for r in report.rejected] == [(3, True)]
    assert _count(engine, Interaction) == 2


def test_a_batch_the_database_refuses_is_retried_row_by_row(
    sqlite_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Should the database still refuse a batch, only the row it refuses is lost."""
    from sqlalchemy.exc import IntegrityError

    real = csv_import.write_batch

    def picky(connection, *, entity, rows, **kwargs):  # type: ignore[no-untyped-def]
        if any(record["external_key"] == "s3" for _, record in rows):
            raise IntegrityError("INSERT", {}, Exception("refused: s3"))
        return real(connection, entity=entity, rows=rows, **kwargs)

    monkeypatch.setattr(csv_import, "write_batch", picky)
    path = tmp_path / "subscribers.csv"
    path.write_text(HEADER + "".join(_rows(5)), encoding="utf-8")
    report = import_csv(sqlite_engine, subscribers=path, now=NOW)
    assert [(r.line, "refused: s3" in r.reason) for r in report.rejected] == [(4, True)]
    assert _count(sqlite_engine, Subscriber) == 4
