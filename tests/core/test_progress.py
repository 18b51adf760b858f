"""Progress: long stages report (stage, done, total) to a callback; the CLI draws Rich bars."""

from __future__ import annotations

import io
import re
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from rich.console import Console
from sqlalchemy import Engine, text

from newsletter.cli.progress import ProgressBars
from newsletter.config import Settings, SourceQueries
from newsletter.db import make_engine
from newsletter.pipeline import run_campaign
from newsletter.store import csv_import
from newsletter.store.campaigns import upsert_campaign
from newsletter.store.sync import sync_source

NOW = datetime(2026, 6, 1, 9, tzinfo=UTC)


class Ticks:
    """Records every call; a Tick."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, int | None]] = []

    def __call__(self, stage: str, done: int, total: int | None) -> None:
        self.calls.append((stage, done, total))

    def of(self, stage: str) -> list[tuple[int, int | None]]:
        return [(d, t) for s, d, t in self.calls if s == stage]


def _files(folder: Path, readers: int = 12) -> dict[str, Path]:
    subs = folder / "s.csv"
    subs.write_text(
        "subscriber_key,email\n" + "".join(f"s{i},s{i}@example.com\n" for i in range(readers))
    )
    items = folder / "i.csv"
    items.write_text(
        "item_key,title,url\n" + "".join(f"i{i},T{i},https://example.com/{i}\n" for i in range(5))
    )
    events = folder / "x.csv"
    events.write_text(
        "subscriber_key,item_key,kind,occurred_at\n"
        + "".join(f"s{i},i{i % 5},read,2026-05-0{1 + i % 9}\n" for i in range(readers))
    )
    return {"subscribers": subs, "items": items, "interactions": events}


def test_import_reports_each_batch_and_the_end(
    sqlite_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(csv_import, "BATCH_ROWS", 5)
    ticks = Ticks()
    csv_import.import_csv(sqlite_engine, **_files(tmp_path), now=NOW, progress=ticks)
    assert ticks.of("importing interactions") == [(0, 12), (5, 12), (10, 12), (12, 12)]
    assert ticks.of("importing items")[-1] == (5, 5)


def test_planning_and_delivery_report_until_everyone_is_settled(
    sqlite_engine: Engine, tmp_path: Path
) -> None:
    csv_import.import_csv(sqlite_engine, **_files(tmp_path), now=NOW)
    upsert_campaign(
        sqlite_engine, name="weekly", template_name="digest", segment_name="everyone", now=NOW
    )
    ticks = Ticks()

    class Sink:
        total, seen = -1, 0

        def start(self, total: int) -> None:
            self.total = total

        def __call__(self, outcome: object) -> None:
            self.seen += 1

    sink = Sink()
    run_campaign(
        sqlite_engine,
        campaign="weekly",
        now=NOW,
        settings=Settings(),
        transport_url="memory:",
        shard_count=3,
        progress=sink,
        plan_progress=ticks,
    )
    planning = ticks.of("planning")
    assert planning[0] == (0, 12) and planning[-1] == (12, 12)
    assert [d for d, _ in planning] == sorted(d for d, _ in planning)
    assert sink.total == sink.seen == 12


def test_sync_reports_rows_per_entity(sqlite_engine: Engine, tmp_path: Path) -> None:
    source_url = f"sqlite:///{tmp_path / 'shop.db'}"
    shop = make_engine(source_url)
    with shop.begin() as c:
        c.execute(text("CREATE TABLE people (k TEXT, mail TEXT)"))
        c.execute(text("INSERT INTO people VALUES ('a', 'a@example.com'), ('b', 'b@example.com')"))
    shop.dispose()
    ticks = Ticks()
    query = "SELECT k AS subscriber_key, mail AS email FROM people"
    source = SourceQueries(url=source_url, subscribers=query)
    (report,) = sync_source(sqlite_engine, name="shop", source=source, now=NOW, progress=ticks)
    assert ticks.of("syncing shop.subscribers") == [(0, 2), (2, 2), (2, 2)]
    assert (report.fetched, report.new) == (2, 2)
    (again,) = sync_source(sqlite_engine, name="shop", source=source, now=NOW, progress=ticks)
    assert (again.fetched, again.loaded, again.new) == (2, 2, 0)


def test_progress_bars_show_stage_counts_on_a_terminal() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=120)
    with ProgressBars(console) as bars:
        bars("importing interactions", 0, 200)
        bars("importing interactions", 200, 200)
        sink = bars.delivery()
        sink.start(3)
        for status in ("sent", "retry", "sent", "failed"):
            sink(type("Outcome", (), {"status": status})())
    shown = out.getvalue()
    assert "importing interactions" in shown and "200/200" in shown
    assert "rendering and delivering" in shown and "3/3" in shown


def test_progress_bars_show_a_rate_once_the_work_has_moved_on() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=120)
    with ProgressBars(console) as bars:
        for done in (0, 100, 200, 300, 400):
            bars("importing interactions", done, 400)
            time.sleep(0.05)  # distinct sample times: Rich needs two to estimate a speed
    shown = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.getvalue())  # colours and cursor moves
    assert re.search(r"400/400 +[\d,]+/s", shown), shown[-300:]


def test_progress_bars_stay_silent_off_a_terminal() -> None:
    out = io.StringIO()
    with ProgressBars(Console(file=out, force_terminal=False)) as bars:
        bars("planning", 5, 10)
    assert out.getvalue() == ""
