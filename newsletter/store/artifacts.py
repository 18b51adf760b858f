"""Run artifacts: what a prepared run persists so any process can work on any of its shards.

One row per (run, kind) in ``run_artifact`` (kinds: ``newsletter.models.ArtifactKind``):
versioned bytes with their sha256. The plan, members and model are written once -- the first
writer wins, so two processes preparing the same run end up using the same artifacts -- and
the delivery pass is replaced by each pass. The database is the artifact store because every
worker already reaches it; the bytes are opaque here (their formats belong to the layers that
write them).

Content over ``PART_BYTES`` is kept in ``run_artifact_part`` rows of that size, in order, and
the artifact's own row holds none: PostgreSQL refuses any single value over 1 GB, and the model
of a run for a million subscribers was 2 GB. :func:`save_streamed` takes a writer (the model
is pickled straight into parts, never held whole as bytes) and :func:`open_artifact` reads a
stored artifact back as a file, one part at a time, so neither side needs its size in memory.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any

from sqlalchemy import Connection, Engine, delete, insert, select, update

from newsletter.store.dialect import dialect_insert
from newsletter.tables import run_artifact_part_table, run_artifact_table

A = run_artifact_table.c
P = run_artifact_part_table.c
PART_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class Artifact:
    """One stored artifact: its format version, sha256 digest and content."""

    version: int
    digest: str
    content: bytes


def save_artifact(
    engine: Engine,
    *,
    run_id: int,
    kind: str,
    version: int,
    content: bytes,
    now: datetime,
    replace: bool = False,
) -> str:
    """Store an artifact; returns the digest of the one stored (an earlier one wins unless
    ``replace``). Content over ``PART_BYTES`` goes into parts (see the module)."""
    if len(content) > PART_BYTES:
        return save_streamed(
            engine,
            run_id=run_id,
            kind=kind,
            version=version,
            write=lambda file: file.write(content),
            now=now,
            replace=replace,
        )
    digest = hashlib.sha256(content).hexdigest()
    values = {
        "run_id": run_id,
        "kind": kind,
        "version": version,
        "digest": digest,
        "content": content,
        "created_at": now,
    }
    with engine.begin() as c:
        insert = dialect_insert(c, table=run_artifact_table).values(**values)
        keys = ["run_id", "kind"]
        if replace:
            changed = {k: v for k, v in values.items() if k not in keys}
            c.execute(insert.on_conflict_do_update(index_elements=keys, set_=changed))
            stored_id = select(A.id).where(A.run_id == run_id, A.kind == kind).scalar_subquery()
            c.execute(delete(run_artifact_part_table).where(P.artifact_id == stored_id))
            return digest
        c.execute(insert.on_conflict_do_nothing(index_elements=keys))
        stored = c.execute(select(A.digest).where(A.run_id == run_id, A.kind == kind)).scalar()
    return str(stored)


class _Parts(io.RawIOBase):
    """A write-only file storing what is written as consecutive parts of one artifact."""

    def __init__(self, connection: Connection, artifact_id: int) -> None:
        super().__init__()
        self.connection, self.artifact_id = connection, artifact_id
        self.pending = bytearray()
        self.parts = 0
        self.hash = hashlib.sha256()

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        self.hash.update(view)
        written = len(view)
        while view:  # a large write (a whole array) is cut into parts, never buffered whole
            room = PART_BYTES - len(self.pending)
            self.pending += view[:room]
            view = view[room:]
            if len(self.pending) == PART_BYTES:
                self._store(bytes(self.pending))
                self.pending.clear()
        return written

    def finish(self) -> str:
        if self.pending or not self.parts:
            self._store(bytes(self.pending))
            self.pending.clear()
        return self.hash.hexdigest()

    def _store(self, chunk: bytes) -> None:
        row = {"artifact_id": self.artifact_id, "part": self.parts, "content": chunk}
        self.connection.execute(insert(run_artifact_part_table).values(**row))
        self.parts += 1


def save_streamed(
    engine: Engine,
    *,
    run_id: int,
    kind: str,
    version: int,
    write: Callable[[IO[bytes]], object],
    now: datetime,
    replace: bool = False,
) -> str:
    """Store the artifact `write(file)` writes, in parts, and return the digest of the one
    stored. An earlier artifact of the run and kind wins (`write` is then not called) unless
    ``replace``. One transaction: no reader ever sees part of an artifact."""
    keys = ["run_id", "kind"]
    header = {"version": version, "digest": "", "content": b"", "created_at": now}
    with engine.begin() as c:
        where = (A.run_id == run_id) & (A.kind == kind)
        if replace:
            c.execute(delete(run_artifact_table).where(where))
        insert_header = dialect_insert(c, table=run_artifact_table).values(
            run_id=run_id, kind=kind, **header
        )
        c.execute(insert_header.on_conflict_do_nothing(index_elements=keys))
        row = c.execute(select(A.id, A.digest).where(where)).one()
        if row.digest:  # an earlier writer's, committed before this transaction could insert
            return str(row.digest)
        parts = _Parts(c, int(row.id))
        write(parts)  # type: ignore[arg-type]
        digest = parts.finish()
        c.execute(update(run_artifact_table).where(A.id == row.id).values(digest=digest))
    return digest


class _PartReader(io.RawIOBase):
    """A read-only file over an artifact's parts, fetching one part at a time."""

    def __init__(self, engine: Engine, artifact_id: int) -> None:
        super().__init__()
        self.engine, self.artifact_id = engine, artifact_id
        self.part, self.current, self.offset = 0, b"", 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        target = memoryview(buffer).cast("B")
        while self.offset >= len(self.current):
            with self.engine.connect() as c:
                found = c.execute(
                    select(P.content).where(P.artifact_id == self.artifact_id, P.part == self.part)
                ).scalar()
            if found is None:
                return 0
            self.current, self.offset, self.part = bytes(found), 0, self.part + 1
        n = min(len(target), len(self.current) - self.offset)
        target[:n] = self.current[self.offset : self.offset + n]
        self.offset += n
        return n


@dataclass(frozen=True)
class OpenArtifact:
    """A stored artifact's version and digest, and its content as a file to read."""

    version: int
    digest: str
    file: IO[bytes]


def open_artifact(engine: Engine, *, run_id: int, kind: str) -> OpenArtifact | None:
    """A run's artifact as a file (read part by part when stored in parts), or None."""
    with engine.connect() as c:
        row = c.execute(
            select(A.id, A.version, A.digest, A.content).where(A.run_id == run_id, A.kind == kind)
        ).first()
    if row is None:
        return None
    content = bytes(row.content)
    file: IO[bytes] = io.BytesIO(content)
    if not content:  # stored in parts (or empty)
        file = io.BufferedReader(_PartReader(engine, int(row.id)), buffer_size=1 << 20)
    return OpenArtifact(int(row.version), str(row.digest), file)


def artifact_digest(engine: Engine, *, run_id: int, kind: str) -> str | None:
    """The digest of a run's artifact (a cheap query: the cache key), or None."""
    with engine.connect() as c:
        found = c.execute(select(A.digest).where(A.run_id == run_id, A.kind == kind)).scalar()
    return None if found is None else str(found)


def load_artifact(engine: Engine, *, run_id: int, kind: str) -> Artifact | None:
    """A run's artifact, its content whole (joined from its parts), or None when the run has
    none of that kind."""
    opened = open_artifact(engine, run_id=run_id, kind=kind)
    if opened is None:
        return None
    with opened.file as file:
        return Artifact(opened.version, opened.digest, file.read())
