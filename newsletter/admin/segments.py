"""Segments in the web UI: list, edit a rule (YAML), see its count and a sample live, save.

Segments are found as planning and the CLI find them (``resolve_segment``): a ``segment`` row
first, then ``NAME.yaml`` in the user's folder (``settings.segment_folder``: ``segments_dir``
or ``./segments``), then the shipped ``segments/``. Each segment says where it comes from.
Saving stores a row, which wins over a file of the same name; a shipped segment can be
overridden that way, but a segment defined in the user's own folder is read-only here (its
file stays the one place to edit it). Rules with a raw ``sql`` part are for admins only (a
read-only SELECT can still read every table).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from newsletter.db import Engine, shipped_path
from newsletter.plan.planner import resolve_segment
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
    """Where segment NAME comes from: ``database`` (a saved row), ``file`` (the user's own
    folder), ``shipped``, or ``new`` (nothing yet). `path` is the file it is read from (for a
    database row: a file it overrides, if any); `error` a broken file's parse error."""

    name: str
    description: str
    origin: str
    path: Path | None = None
    text: str = ""
    error: str | None = None

    @property
    def editable(self) -> bool:
        """Saving in the UI is allowed unless the user's own file defines the segment."""
        return self.origin != "file"

    @property
    def where(self) -> str:
        """'the database', 'the file /srv/segments/premium.yaml', 'the shipped file ...'."""
        if self.origin == "database":
            over = f" (overrides the file {self.path})" if self.path else ""
            return f"the database{over}"
        if self.origin == "file":
            return f"the file {self.path}"
        if self.origin == "shipped":
            return f"the shipped file {self.path}"
        return "nowhere yet (new)"


@dataclass
class SegmentCheck:
    """A rule's count and sample at `now`, or the error that stops it."""

    count: int | None = None
    sample: list[dict[str, object]] = field(default_factory=list)
    error: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {"count": self.count, "sample": self.sample, "error": self.error}


def _files(folder: Path) -> dict[str, list[Path]]:
    """Every segment file by name in the user's folder and the shipped one (which one wins is
    for ``resolve_segment`` to say)."""
    out: dict[str, list[Path]] = {}
    for where in (folder, shipped_path("segments")):
        for name, path in segment_files(where).items():
            if all(path.resolve() != seen.resolve() for seen in out.get(name, [])):
                out.setdefault(name, []).append(path)
    return out


def _is_shipped(path: Path) -> bool:
    return path.resolve().parent == shipped_path("segments").resolve()


def locate(engine: Engine, *, name: str, folder: Path) -> SegmentSummary:
    """Segment NAME as planning, ``newsletter run`` and ``newsletter why`` find it: the
    source ``resolve_segment`` picks, its text, and a broken file's error."""
    files = _files(folder).get(name, [])
    try:
        definition = resolve_segment(engine, name, folder=folder)
    except SegmentError as exc:  # also a file that cannot be read, or not as UTF-8 text
        stored = segment_source(engine, name=name)
        broken = next((p for p in files if str(exc).startswith(str(p))), None)
        if broken is not None:
            origin = "shipped" if _is_shipped(broken) else "file"
            text = broken.read_text(encoding="utf-8", errors="replace")  # shown beside its error
            return SegmentSummary(name, "", origin, broken, text, str(exc))
        if stored is not None:
            return SegmentSummary(name, "", "database", None, stored, str(exc))
        return SegmentSummary(name, "", "new")
    chosen = next((p for p in files if definition.source == str(p)), None)
    if chosen is None:  # resolve_segment read the database row
        text = segment_source(engine, name=name) or ""
        over = files[0] if files else None
        return SegmentSummary(name, definition.description, "database", over, text)
    origin = "shipped" if _is_shipped(chosen) else "file"
    text = chosen.read_text(encoding="utf-8")
    return SegmentSummary(name, definition.description, origin, chosen, text)


def overview(engine: Engine, *, folder: Path) -> list[SegmentSummary]:
    """Every segment: saved rows, the user's own files and the shipped ones, each once, with
    the source planning uses."""
    names = {n for n, _, _ in store.saved_segments(engine)} | set(_files(folder))
    return [locate(engine, name=n, folder=folder) for n in sorted(names)]


def open_segment(engine: Engine, *, name: str, folder: Path) -> SegmentSummary:
    """Segment NAME with its text and where it comes from (origin ``new`` for a new one)."""
    return locate(engine, name=name, folder=folder)


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


def save(
    engine: Engine, *, name: str, text: str, now: datetime, admin: bool, folder: Path
) -> SegmentCheck:
    """Validate (it must run) and save the rule; SegmentError says what to fix. A segment
    defined in the user's own folder is not saved over (its file is where it is edited)."""
    definition = _parse(name, text, admin=admin)
    current = locate(engine, name=name, folder=folder)
    if not current.editable:
        raise SegmentError(
            f"segment {name!r} is defined in {current.path}; edit that file "
            "(or save this rule under another name)"
        )
    result = check(engine, name=name, text=text, now=now, admin=admin)
    if result.error:
        raise SegmentError(result.error)
    store.save_segment(
        engine, name=name, definition=text, description=definition.description, now=now
    )
    return result
