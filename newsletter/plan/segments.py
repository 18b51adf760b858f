"""Segment definitions: YAML parsed into a rule tree, with errors naming file, line and key.

A segment file (``segments/<name>.yaml``, or a ``segment`` row edited in the UI)::

    description: Opened or clicked in the last 30 days, or read three items.
    rule:
      any:
        - engaged: {within_days: 30}
        - interactions: {kind: read, at_least: 3, within_days: 30}

Rules (one key per mapping): ``all`` / ``any`` (lists), ``not`` (one rule), ``status``,
``locale`` and ``timezone`` (a value or a list; a locale ``en`` also matches ``en-GB``, a
timezone ending in ``/`` is a prefix), ``attribute`` (``key`` plus one of ``equals``,
``not_equals``, ``in``, ``exists``, ``gte``, ``lte``), ``signup`` (``within_days`` and/or
``older_than_days``), ``interactions`` (``kind``, ``topic``, ``within_days``, ``at_least``,
``at_most``), ``engaged`` (a human open or click within ``within_days``) and ``sql`` (a
read-only SELECT returning subscriber ids, validated before use). The rule classes live in
:mod:`newsletter.rules`; compiling them to SQL lives in
:mod:`newsletter.store.segments`.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from newsletter.rules import (
    Attribute,
    Combine,
    Engaged,
    Interactions,
    Match,
    Not,
    RawSql,
    Rule,
    SegmentDefinition,
    SegmentError,
    Signup,
)

__all__ = [
    "RULE_KEYS",
    "Attribute",
    "Combine",
    "Engaged",
    "Interactions",
    "Match",
    "Not",
    "RawSql",
    "Rule",
    "SegmentDefinition",
    "SegmentError",
    "Signup",
    "load_segment_file",
    "parse_segment",
    "segment_files",
    "validate_select",
]

RULE_KEYS = (
    "all",
    "any",
    "not",
    "status",
    "locale",
    "timezone",
    "attribute",
    "signup",
    "interactions",
    "engaged",
    "sql",
)
TOP_KEYS = ("name", "description", "rule")
ATTRIBUTE_OPS = ("equals", "not_equals", "in", "exists", "gte", "lte")
FIELDS = {
    "signup": ("within_days", "older_than_days"),
    "interactions": ("kind", "topic", "within_days", "at_least", "at_most"),
    "engaged": ("within_days",),
    "attribute": ("key", *ATTRIBUTE_OPS),
}


class _Parser:
    """Walks yaml nodes (which carry line marks) and builds the rule tree."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, node: Node, message: str) -> SegmentError:
        return SegmentError(f"{self.source}:{node.start_mark.line + 1}: {message}")

    def unknown(self, node: Node, key: str, valid: tuple[str, ...], where: str) -> SegmentError:
        close = difflib.get_close_matches(key, valid, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return self.fail(
            node, f"unknown key {key!r} in {where}{hint}; valid keys: {', '.join(valid)}"
        )

    def mapping(self, node: Node, where: str) -> dict[str, tuple[Node, Node]]:
        if not isinstance(node, MappingNode):
            raise self.fail(node, f"{where} must be a mapping of keys to values")
        out: dict[str, tuple[Node, Node]] = {}
        for key_node, value_node in node.value:
            out[str(key_node.value)] = (key_node, value_node)
        return out

    def scalar(self, node: Node, what: str) -> Any:
        if not isinstance(node, ScalarNode):
            raise self.fail(node, f"{what} must be a single value")
        return yaml.safe_load(yaml.serialize(node))

    def number(self, node: Node, what: str, *, integer: bool = False) -> Any:
        value = self.scalar(node, what)
        ok = isinstance(value, int) if integer else isinstance(value, int | float)
        if not ok or isinstance(value, bool) or value < 0:
            kind = "a whole number" if integer else "a number"
            raise self.fail(node, f"{what} must be {kind} >= 0, got {value!r}")
        return value

    def strings(self, node: Node, what: str) -> tuple[str, ...]:
        items = node.value if isinstance(node, SequenceNode) else [node]
        values = tuple(str(self.scalar(n, what)) for n in items)
        if not values:
            raise self.fail(node, f"{what} needs at least one value")
        return values

    def rule(self, node: Node) -> Rule:
        entries = self.mapping(node, "a rule")
        if len(entries) != 1:
            raise self.fail(node, f"a rule has exactly one key, one of: {', '.join(RULE_KEYS)}")
        ((key, (key_node, value)),) = entries.items()
        if key not in RULE_KEYS:
            raise self.unknown(key_node, key, RULE_KEYS, "a rule")
        return self.build(key, value)

    def build(self, key: str, value: Node) -> Rule:
        if key in ("all", "any"):
            if not isinstance(value, SequenceNode) or not value.value:
                raise self.fail(value, f"'{key}' needs a non-empty list of rules")
            return Combine(key, tuple(self.rule(n) for n in value.value))
        if key == "not":
            return Not(self.rule(value))
        if key in ("status", "locale", "timezone"):
            return Match(key, self.strings(value, key))
        if key == "sql":
            return RawSql(validate_select(str(self.scalar(value, "sql")), self.fail_at(value)))
        fields = self.fields(key, value)
        return getattr(self, f"build_{key}")(fields, value)

    def fail_at(self, node: Node) -> str:
        return f"{self.source}:{node.start_mark.line + 1}"

    def fields(self, key: str, node: Node) -> dict[str, Node]:
        entries = self.mapping(node, f"'{key}'")
        for name, (key_node, _) in entries.items():
            if name not in FIELDS[key]:
                raise self.unknown(key_node, name, FIELDS[key], f"'{key}'")
        return {name: v for name, (_, v) in entries.items()}

    def build_signup(self, f: dict[str, Node], node: Node) -> Rule:
        if not f:
            raise self.fail(node, "'signup' needs within_days and/or older_than_days")
        within = self.number(f["within_days"], "within_days") if "within_days" in f else None
        older = f.get("older_than_days")
        return Signup(within, None if older is None else self.number(older, "older_than_days"))

    def build_engaged(self, f: dict[str, Node], node: Node) -> Rule:
        if "within_days" not in f:
            raise self.fail(node, "'engaged' needs within_days (e.g. {within_days: 30})")
        return Engaged(self.number(f["within_days"], "within_days"))

    def build_interactions(self, f: dict[str, Node], node: Node) -> Rule:
        at_most, within = f.get("at_most"), f.get("within_days")
        return Interactions(
            kinds=self.strings(f["kind"], "kind") if "kind" in f else (),
            topics=self.strings(f["topic"], "topic") if "topic" in f else (),
            within_days=None if within is None else self.number(within, "within_days"),
            at_least=self.number(f["at_least"], "at_least", integer=True)
            if "at_least" in f
            else int(at_most is None),
            at_most=None if at_most is None else self.number(at_most, "at_most", integer=True),
        )

    def build_attribute(self, f: dict[str, Node], node: Node) -> Rule:
        ops = [k for k in f if k in ATTRIBUTE_OPS]
        if "key" not in f or len(ops) != 1:
            raise self.fail(
                node, f"'attribute' needs 'key' and exactly one of: {', '.join(ATTRIBUTE_OPS)}"
            )
        op, key = ops[0], str(self.scalar(f["key"], "key"))
        if op == "in":
            return Attribute(key, op, tuple(self.scalar(n, "in") for n in _items(f[op])))
        value = self.scalar(f[op], op)
        if op in ("gte", "lte") and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise self.fail(f[op], f"'{op}' must be a number, got {value!r}")
        return Attribute(key, op, value)


def _items(node: Node) -> list[Node]:
    return list(node.value) if isinstance(node, SequenceNode) else [node]


def parse_segment(text: str, *, source: str, name: str | None = None) -> SegmentDefinition:
    """Parse a segment YAML document; every error names `source`, the line and the bad key."""
    parser = _Parser(source)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise SegmentError(f"{source}{line}: not valid YAML: {problem}") from exc
    if root is None:
        raise SegmentError(f"{source}:1: the segment is empty; it needs a 'rule'")
    top = parser.mapping(root, "a segment file")
    for key, (key_node, _) in top.items():
        if key not in TOP_KEYS:
            raise parser.unknown(key_node, key, TOP_KEYS, "a segment file")
    if "rule" not in top:
        raise parser.fail(root, "the segment has no 'rule' key")
    seg_name = str(parser.scalar(top["name"][1], "name")) if "name" in top else name
    desc = str(parser.scalar(top["description"][1], "description")) if "description" in top else ""
    return SegmentDefinition(
        name=seg_name or Path(source).stem,
        description=desc,
        rule=parser.rule(top["rule"][1]),
        source=source,
    )


def load_segment_file(path: Path) -> SegmentDefinition:
    """Parse one segment file (its name defaults to the file stem)."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise SegmentError(
            f"{path}:{line}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x}); save it as UTF-8"
        ) from exc
    except OSError as exc:
        raise SegmentError(f"{path}: cannot read the segment file: {exc.strerror}") from exc
    return parse_segment(text, source=str(path), name=path.stem)


def segment_files(folder: Path) -> dict[str, Path]:
    """The segment files of a folder by name (``<name>.yaml`` or ``.yml``)."""
    found = sorted(folder.glob("*.yaml")) + sorted(folder.glob("*.yml"))
    return {p.stem: p for p in found}


def validate_select(sql: str, where: str = "sql") -> str:
    """Accept only one read-only SELECT (or WITH ... SELECT); refuse writes and extra statements.

    The check is `newsletter.store.readonly.check_select`; execution is also read-only.
    """
    from newsletter.store.readonly import UnsafeQuery, check_select

    try:
        return check_select(sql)
    except UnsafeQuery as exc:
        raise SegmentError(f"{where}: the sql rule {exc}") from exc
