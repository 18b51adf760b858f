"""The segment rule tree: what a segment selects, as plain frozen dataclasses.

Kernel module (no stage imports): :mod:`newsletter.plan.segments` parses YAML into these
classes and :mod:`newsletter.store.segments` compiles them to SQL, so neither stage needs
the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class SegmentError(ValueError):
    """A segment definition is invalid; the message names the file, the line and the fix."""


@dataclass(frozen=True)
class Combine:
    """``all`` / ``any`` of sub-rules."""

    op: str
    rules: tuple[Rule, ...]


@dataclass(frozen=True)
class Not:
    rule: Rule


@dataclass(frozen=True)
class Match:
    """``status`` / ``locale`` / ``timezone`` equal to one of `values`."""

    field: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class Attribute:
    key: str
    op: str
    value: Any


@dataclass(frozen=True)
class Signup:
    within_days: float | None = None
    older_than_days: float | None = None


@dataclass(frozen=True)
class Interactions:
    kinds: tuple[str, ...] = ()
    topics: tuple[str, ...] = ()
    within_days: float | None = None
    at_least: int = 1
    at_most: int | None = None


@dataclass(frozen=True)
class Engaged:
    within_days: float


@dataclass(frozen=True)
class RawSql:
    sql: str


Rule = Combine | Not | Match | Attribute | Signup | Interactions | Engaged | RawSql


@dataclass(frozen=True)
class SegmentDefinition:
    name: str
    description: str
    rule: Rule
    source: str
