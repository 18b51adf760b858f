"""Run artifacts: what a prepared run persists so any process can work on any of its shards.

One row per (run, kind) in ``run_artifact`` (kinds: ``newsletter.models.ArtifactKind``):
versioned bytes with their sha256. The plan, members and model are written once -- the first
writer wins, so two processes preparing the same run end up using the same artifacts -- and
the delivery pass is replaced by each pass. The database is the artifact store because every
worker already reaches it; the bytes are opaque here (their formats belong to the layers that
write them).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, select

from newsletter.store.dialect import dialect_insert
from newsletter.tables import run_artifact_table

A = run_artifact_table.c


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
    ``replace``)."""
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
            return digest
        c.execute(insert.on_conflict_do_nothing(index_elements=keys))
        stored = c.execute(select(A.digest).where(A.run_id == run_id, A.kind == kind)).scalar()
    return str(stored)


def artifact_digest(engine: Engine, *, run_id: int, kind: str) -> str | None:
    """The digest of a run's artifact (a cheap query: the cache key), or None."""
    with engine.connect() as c:
        found = c.execute(select(A.digest).where(A.run_id == run_id, A.kind == kind)).scalar()
    return None if found is None else str(found)


def load_artifact(engine: Engine, *, run_id: int, kind: str) -> Artifact | None:
    """A run's artifact, or None when the run has none of that kind."""
    with engine.connect() as c:
        row = c.execute(
            select(A.version, A.digest, A.content).where(A.run_id == run_id, A.kind == kind)
        ).first()
    if row is None:
        return None
    return Artifact(int(row.version), str(row.digest), bytes(row.content))
