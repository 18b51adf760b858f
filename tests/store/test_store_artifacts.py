"""Run artifacts over PART_BYTES are stored in parts and read back whole, on both databases:
PostgreSQL refuses any single value over 1 GB, and a million subscribers' model is several."""

from __future__ import annotations

import hashlib
import io
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, delete, func, select

from newsletter.db import session_scope
from newsletter.models import Campaign, Run
from newsletter.store import artifacts
from newsletter.tables import run_artifact_part_table, run_artifact_table, run_table

NOW = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)
PART = 1000


def _run(engine: Engine) -> int:
    with session_scope(engine) as s:
        campaign = Campaign(
            name=f"c{datetime.now().timestamp()}", template_name="digest", created_at=NOW
        )
        s.add(campaign)
        s.flush()
        run = Run(campaign_id=int(campaign.id or 0), scheduled_for=NOW, created_at=NOW)
        s.add(run)
        s.flush()
        return int(run.id or 0)


def _parts(engine: Engine) -> int:
    with engine.connect() as c:
        return int(
            c.execute(select(func.count()).select_from(run_artifact_part_table)).scalar_one()
        )


@pytest.fixture
def small_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(artifacts, "PART_BYTES", PART)


def test_large_content_is_stored_in_parts_and_read_back_whole(
    engine: Engine, small_parts: None
) -> None:
    run_id = _run(engine)
    content = bytes(range(256)) * 14  # 3,584 bytes: parts of 1,000, 1,000, 1,000 and 584
    digest = artifacts.save_artifact(
        engine, run_id=run_id, kind="model", version=3, content=content, now=NOW
    )
    assert digest == hashlib.sha256(content).hexdigest()
    assert _parts(engine) == 4
    with engine.connect() as c:
        inline = c.execute(select(run_artifact_table.c.content)).scalar_one()
    assert bytes(inline) == b""  # the row itself holds none of it
    found = artifacts.load_artifact(engine, run_id=run_id, kind="model")
    assert found is not None and (found.version, found.digest) == (3, digest)
    assert found.content == content
    opened = artifacts.open_artifact(engine, run_id=run_id, kind="model")
    assert opened is not None
    pieces = iter(lambda: opened.file.read(333), b"")  # reads that straddle the parts
    assert b"".join(pieces) == content


def test_small_content_stays_in_its_row(engine: Engine, small_parts: None) -> None:
    run_id = _run(engine)
    artifacts.save_artifact(
        engine, run_id=run_id, kind="plan", version=1, content=b"x" * PART, now=NOW
    )
    assert _parts(engine) == 0
    found = artifacts.open_artifact(engine, run_id=run_id, kind="plan")
    assert found is not None and found.file.read() == b"x" * PART


def test_a_streamed_artifact_is_written_once_and_the_first_writer_wins(
    engine: Engine, small_parts: None
) -> None:
    run_id = _run(engine)
    first = artifacts.save_streamed(
        engine,
        run_id=run_id,
        kind="model",
        version=1,
        write=lambda f: f.write(b"a" * 2500),
        now=NOW,
    )
    calls: list[int] = []
    second = artifacts.save_streamed(
        engine,
        run_id=run_id,
        kind="model",
        version=1,
        write=lambda f: calls.append(f.write(b"b" * 2500)),
        now=NOW,
    )
    assert second == first == hashlib.sha256(b"a" * 2500).hexdigest()
    assert calls == []  # the second fit is not even written
    assert _parts(engine) == 3


def test_a_write_that_fails_leaves_no_artifact_and_no_parts(
    engine: Engine, small_parts: None
) -> None:
    run_id = _run(engine)

    def broken(file: io.RawIOBase) -> None:
        file.write(b"z" * 2500)  # two parts are already inserted when it fails
        raise RuntimeError("the disk is full")

    with pytest.raises(RuntimeError, match="disk is full"):
        artifacts.save_streamed(
            engine, run_id=run_id, kind="model", version=1, write=broken, now=NOW
        )
    assert artifacts.artifact_digest(engine, run_id=run_id, kind="model") is None
    assert _parts(engine) == 0


def test_deleting_a_run_deletes_its_artifacts_parts(engine: Engine, small_parts: None) -> None:
    run_id = _run(engine)
    artifacts.save_artifact(
        engine, run_id=run_id, kind="model", version=1, content=b"q" * 2500, now=NOW
    )
    with engine.begin() as c:
        c.execute(delete(run_table).where(run_table.c.id == run_id))
    assert _parts(engine) == 0


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    writes=st.lists(st.binary(max_size=2 * PART + 7), max_size=6),
    reads=st.lists(st.integers(1, 3 * PART), min_size=1, max_size=5),
)
def test_any_writes_read_back_as_the_same_bytes(
    sqlite_engine: Engine, small_parts: None, writes: list[bytes], reads: list[int]
) -> None:
    """Whatever sizes the writer writes in and the reader reads in, the bytes are the same."""
    run_id = _run(sqlite_engine)

    def write(file: io.RawIOBase) -> None:
        for chunk in writes:
            file.write(chunk)

    artifacts.save_streamed(
        sqlite_engine, run_id=run_id, kind="model", version=1, write=write, now=NOW
    )
    opened = artifacts.open_artifact(sqlite_engine, run_id=run_id, kind="model")
    assert opened is not None
    got, k = [], 0
    while piece := opened.file.read(reads[k % len(reads)]):
        got.append(piece)
        k += 1
    assert b"".join(got) == b"".join(writes)
    assert opened.digest == hashlib.sha256(b"".join(writes)).hexdigest()


def test_replacing_a_large_artifact_with_a_small_one_leaves_no_parts(
    engine: Engine, small_parts: None
) -> None:
    run_id = _run(engine)
    big = b"b" * 2500
    artifacts.save_artifact(engine, run_id=run_id, kind="delivery", version=1, content=big, now=NOW)
    artifacts.save_artifact(
        engine, run_id=run_id, kind="delivery", version=1, content=b"small", now=NOW, replace=True
    )
    assert _parts(engine) == 0
    found = artifacts.load_artifact(engine, run_id=run_id, kind="delivery")
    assert found is not None and found.content == b"small"
