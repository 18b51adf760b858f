"""Segments in the web UI: list, edit a rule (YAML), see its count and a sample live, save.

A saved segment is a ``segment`` row, which planning reads before ``segments/NAME.yaml``, so
saving a shipped segment's name overrides the file. Rules with a raw ``sql`` part are for
admins only (a read-only SELECT can still read every table).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

from newsletter.db import Engine, shipped_path
from newsletter.plan.segments import (
    SegmentDefinition,
    SegmentError,
    parse_segment,
    segment_files,
)
from newsletter.store import segments as store
from newsletter.store.planning import profiles, segment_source
from newsletter.store.segments import has_raw_sql, segment_ids

NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


@dataclass(frozen=True)
class SegmentSummary:
    name: str
    description: str
    origin: str  # database | file


@dataclass
class SegmentCheck:
    """A rule's count and sample at `now`, or the error that stops it."""

    count: int | None = None
    sample: list[dict[str, object]] = field(default_factory=list)
    error: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {"count": self.count, "sample": self.sample, "error": self.error}


def overview(engine: Engine) -> list[SegmentSummary]:
    """Saved segments and the shipped segment files not overridden by one."""
    out = {n: SegmentSummary(n, d, "database") for n, d, _ in store.saved_segments(engine)}
    for name, path in segment_files(shipped_path("segments")).items():
        if name not in out:
            try:
                description = parse_segment(path.read_text("utf-8"), source=str(path)).description
            except SegmentError:
                description = ""
            out[name] = SegmentSummary(name, description, "file")
    return sorted(out.values(), key=lambda s: s.name)


def open_segment(engine: Engine, *, name: str) -> str:
    """The YAML of segment NAME (saved first, then the shipped file); '' for a new one."""
    stored = segment_source(engine, name=name)
    if stored is not None:
        return stored
    files = segment_files(shipped_path("segments"))
    return files[name].read_text(encoding="utf-8") if name in files else ""


def _parse(name: str, text: str, *, admin: bool) -> SegmentDefinition:
    if not NAME.match(name):
        raise SegmentError(
            f"segment name {name!r}: use lowercase letters, digits, '-' and '_' (e.g. vip-readers)"
        )
    definition = parse_segment(text, source=f"segment {name!r}", name=name)
    if has_raw_sql(definition.rule) and not admin:
        raise SegmentError(f"segment {name!r}: rules with 'sql' can be used by admins only")
    return definition


def check(
    engine: Engine, *, name: str, text: str, now: datetime, admin: bool, sample: int = 10
) -> SegmentCheck:
    """Count the subscribers the rule selects at `now`, with a sample (errors, not raises)."""
    try:
        ids = segment_ids(engine, definition=_parse(name, text, admin=admin), now=now)
    except SegmentError as exc:
        return SegmentCheck(error=str(exc))
    shown = [
        {"id": p.id, "email": p.email, "status": p.status, "timezone": p.timezone}
        for p in profiles(engine, ids=ids[:sample])
    ]
    return SegmentCheck(count=len(ids), sample=shown)


def save(engine: Engine, *, name: str, text: str, now: datetime, admin: bool) -> SegmentCheck:
    """Validate (it must run) and save the rule; SegmentError says what to fix."""
    definition = _parse(name, text, admin=admin)
    result = check(engine, name=name, text=text, now=now, admin=admin)
    if result.error:
        raise SegmentError(result.error)
    store.save_segment(
        engine, name=name, definition=text, description=definition.description, now=now
    )
    return result
