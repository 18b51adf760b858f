"""Lint a template when it is saved, so mistakes surface in the editor and not in a run.

    lint_template(source: TemplateSource) -> list[LintIssue]     # every file of a template
    lint_file(text, *, path, mjml, bindings=None) -> list[LintIssue]

Checks (every issue names file, line and column):

* the file is under ``MAX_TEMPLATE_BYTES``; Jinja parses;
* every variable and attribute exists in the documented context (``context.CONTEXT_FIELDS``);
  unknown names are errors with a "did you mean" suggestion;
* no sandbox escapes (``__dunder__`` access, ``|attr('__class__')``, ``.format``);
* MJML only: MJML elements are known and balanced; Jinja control flow sits inside ``<mj-raw>``
  (or inside text content such as ``<mj-text>``), never in an ``<mj-raw>`` directly inside
  ``<mj-column>`` (MJML hoists it before the column's content, so an ``{% if %}`` there wraps
  nothing); no Jinja in numeric or layout attributes;
  no ``<`` or ``>`` inside Jinja tags (write ``is lt`` / ``is gt``); link schemes are https,
  http or mailto.
"""

from __future__ import annotations

import difflib
import html
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from jinja2 import TemplateSyntaxError, nodes

from newsletter.render import limits
from newsletter.render.compile import (
    _JINJA,
    _MJ_TAG,
    _RAW_BLOCK,
    CompileError,
    TemplateSource,
    check_structure,
    compile_mjml,
    compile_template,
    line_col,
    locate_mjml_error,
)
from newsletter.render.context import CONTEXT_FIELDS
from newsletter.render.links import (
    ALLOWED_SCHEMES,
    browser_url,
    is_scheme_relative,
    url_scheme,
)
from newsletter.render.sandbox import DENIED_ATTRIBUTES, environment

MAX_TEMPLATE_BYTES = 100_000  # one file
MAX_COMPILED_BYTES = limits.MAX_COMPILED_BYTES
JINJA_ATTRIBUTES = frozenset({"href", "src", "alt", "title", "background-url", "name"})
TEXT_ELEMENTS = frozenset(
    {"mj-raw", "mj-text", "mj-button", "mj-table", "mj-title", "mj-preview", "mj-navbar-link"}
    | {"mj-social-element", "mj-accordion-title", "mj-accordion-text"}
)
ALLOWED_GLOBALS = frozenset({"range", "dict", "namespace", "loop", "super", "caller", "varargs"})
PARTIAL_BINDINGS = {"slot": "sections[].slots[]", "section": "sections[]"}
ANGLE_MESSAGE = (
    "'<' or '>' inside a Jinja tag breaks the MJML parser: "
    "write 'is lt' / 'is gt' (e.g. {% if n is gt 3 %})"
)
_ATTRIBUTE = re.compile(r"""([a-zA-Z][\w:-]*)\s*=\s*(["'])(.*?)\2""", re.DOTALL)
_LINK = re.compile(r"""\b(href|src|background-url)\s*=\s*(["'])(.*?)\2""", re.DOTALL)


@dataclass(frozen=True)
class LintIssue:
    """One finding: where it is, what is wrong, and whether it blocks saving."""

    path: str
    line: int
    column: int
    message: str
    severity: str = "error"

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}: {self.severity}: {self.message}"


def _schema() -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
    """Known paths, leaf paths and free-form paths, from the documented context."""
    known, leaves, free = set(), set(), set()
    for field in CONTEXT_FIELDS:
        if field.endswith(".*"):
            free.add(field[:-2])
            field = field[:-2]
        else:
            leaves.add(field)
        parts = re.split(r"(?=\.)|(?=\[\])", field)
        for end in range(1, len(parts) + 1):
            known.add("".join(parts[:end]))
    return frozenset(known), frozenset(leaves), frozenset(free)


KNOWN, LEAVES, FREE = _schema()
ALIASES = {"hero": "sections[].slots[]"}


class _Checker:
    """Walks a Jinja AST, tracking which context path each local name stands for."""

    def __init__(self, path: str, bindings: Mapping[str, str | None]) -> None:
        self.path, self.issues = path, list[LintIssue]()
        self.scope: dict[str, str | None] = dict(bindings)

    def error(self, node: nodes.Node, message: str) -> None:
        self.issues.append(LintIssue(self.path, node.lineno or 1, 1, message))

    def resolve(self, node: nodes.Node) -> str | None:
        """The documented path an expression refers to, or None when unknown/any."""
        if isinstance(node, nodes.Name):
            return self._name(node)
        if isinstance(node, nodes.Getattr):
            return self._member(node, self.resolve(node.node), node.attr)
        if isinstance(node, nodes.Getitem):
            base = self.resolve(node.node)
            if isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
                return self._member(node, base, node.arg.value)
            self.visit(node.arg)
            return f"{base}[]" if base and f"{base}[]" in KNOWN else None
        self.visit(node)
        return None

    def _name(self, node: nodes.Name) -> str | None:
        name = node.name
        if name in self.scope:
            return self.scope[name]
        if name in ALIASES:
            return ALIASES[name]
        if name in KNOWN:
            return name
        if name not in ALLOWED_GLOBALS:
            tops = sorted({p.split(".")[0].split("[")[0] for p in KNOWN} | set(ALIASES))
            self.error(node, f"unknown variable {name!r}{_suggest(name, tops)}")
        return None

    def _member(self, node: nodes.Node, base: str | None, attr: str) -> str | None:
        if attr.startswith("_") or attr in DENIED_ATTRIBUTES:
            self.error(node, f"template security: access to {attr!r} is not allowed")
            return None
        if base is None or base in FREE or base in LEAVES:
            return None
        path = f"{base}.{attr}"
        if path in KNOWN:
            return path
        siblings = [p.rsplit(".", 1)[1] for p in KNOWN if p.startswith(base + ".")]
        siblings = [s for s in siblings if "." not in s and "[" not in s]
        if f"{base}[]" in KNOWN:
            return None  # a list: its methods and filters are fine
        self.error(node, f"unknown variable {_display(path)!r}{_suggest(attr, siblings)}")
        return None

    def visit(self, node: nodes.Node) -> None:
        """Check a node and its children, binding loop and set targets to context paths."""
        if isinstance(node, nodes.For):
            self._for(node)
        elif isinstance(node, nodes.Assign):
            value = self.resolve(node.node)
            self._bind(node.target, value)
        elif isinstance(node, nodes.Filter | nodes.Test) and node.name == "attr":
            self._attr_filter(node)
        elif isinstance(node, nodes.Name | nodes.Getattr | nodes.Getitem):
            self.resolve(node)
        elif isinstance(node, nodes.Macro | nodes.CallBlock):
            for arg in getattr(node, "args", ()):
                self.scope[arg.name] = None
            self.scope[getattr(node, "name", "caller")] = None
            self._children(node)
        else:
            self._children(node)

    def _children(self, node: nodes.Node) -> None:
        for child in node.iter_child_nodes():
            self.visit(child)

    def _for(self, node: nodes.For) -> None:
        base = self.resolve(node.iter)
        item = f"{base}[]" if base and f"{base}[]" in KNOWN else None
        self._bind(node.target, item)
        self.scope["loop"] = None
        for child in [*node.body, *node.else_]:
            self.visit(child)
        if node.test is not None:
            self.visit(node.test)

    def _bind(self, target: nodes.Node, value: str | None) -> None:
        if isinstance(target, nodes.Name):
            self.scope[target.name] = value
        for name in target.find_all(nodes.Name):
            self.scope.setdefault(name.name, None)

    def _attr_filter(self, node: nodes.Filter | nodes.Test) -> None:
        arg = node.args[0] if node.args else None
        name = arg.value if isinstance(arg, nodes.Const) else None
        if not isinstance(name, str) or name.startswith("_") or name in DENIED_ATTRIBUTES:
            self.error(node, "template security: |attr() with this name is not allowed")
        self._children(node)


def _display(path: str) -> str:
    return path.replace("sections[].slots[]", "slot").replace("sections[]", "section")


def _suggest(name: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _jinja_issues(text: str, *, path: str, bindings: Mapping[str, str | None]) -> list[LintIssue]:
    try:
        tree = environment(html=True).parse(text)
    except TemplateSyntaxError as exc:
        return [LintIssue(path, exc.lineno or 1, 1, f"Jinja syntax: {exc.message}")]
    except RecursionError:
        return [LintIssue(path, 1, 1, "the template nests too deeply to parse")]
    checker = _Checker(path, bindings)
    checker.visit(tree)
    return checker.issues


UNSUPPORTED_IN_MJML = {
    nodes.Macro: 'macros (use an MJML partial: <mj-include path="partials/..." />)',
    nodes.CallBlock: "{% call %} blocks",
    nodes.AssignBlock: "block {% set %} (set a value with {% set x = ... %})",
    nodes.Include: "{% include %} (use <mj-include>)",
    nodes.Import: "{% import %}",
    nodes.FromImport: "{% from ... import %}",
}


def _unsupported_issues(text: str, *, path: str) -> Iterator[LintIssue]:
    """Constructs whose output would be escaped twice by the QP renderer, or need a loader."""
    try:
        tree = environment(html=True).parse(text)
    except (TemplateSyntaxError, RecursionError):
        return
    for kind, label in UNSUPPORTED_IN_MJML.items():
        for node in tree.find_all(kind):
            yield LintIssue(path, node.lineno or 1, 1, f"{label} are not supported in MJML")


def _mjml_issues(text: str, *, path: str) -> Iterator[LintIssue]:
    """MJML-specific rules: structure, control flow placement, attributes, <> and schemes."""
    try:
        check_structure(text, path=path)
    except CompileError as exc:
        yield LintIssue(path, exc.line or 1, exc.column or 1, str(exc).split(": ", 1)[1])
    raw = _RAW_BLOCK.search(text)
    if raw:
        line, col = line_col(text, raw.start())
        yield LintIssue(path, line, col, "{% raw %} is not supported in MJML")
    suspect = locate_mjml_error(text)
    if suspect:
        line, col, hint = suspect
        yield LintIssue(path, line, col, "MJML will not parse here" + hint)
    for match in _JINJA.finditer(text):
        if "<" in match.group(0) or ">" in match.group(0):
            line, col = line_col(text, match.start())
            yield LintIssue(path, line, col, ANGLE_MESSAGE)
    yield from _placement_issues(text, path=path)
    yield from _unsupported_issues(text, path=path)
    yield from _link_issues(text, path=path)


def _link_issues(text: str, *, path: str) -> Iterator[LintIssue]:
    """Link schemes as a browser reads them (entities decoded, tabs dropped): https, http or
    mailto only, and no scheme-relative ``//host`` links."""
    for match in _LINK.finditer(text):
        literal = browser_url(html.unescape(match.group(3).split("{", 1)[0]))
        scheme = url_scheme(literal) if ":" in literal else None
        line, col = line_col(text, match.start(3))
        if scheme is not None and scheme not in ALLOWED_SCHEMES:
            problem = f"link scheme {scheme!r} is not allowed (use {', '.join(ALLOWED_SCHEMES)})"
        elif scheme is None and is_scheme_relative(literal):
            problem = "scheme-relative link (//host): write the full https:// URL"
        else:
            continue
        yield LintIssue(path, line, col, problem)


def _placement_issues(text: str, *, path: str) -> Iterator[LintIssue]:
    """Jinja in attributes only where allowed; control flow only inside text elements."""
    masked = _JINJA.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), text)
    tags = [(m.start(), m.end(), m) for m in _MJ_TAG.finditer(masked)]
    stack: list[str] = []
    jinja = list(_JINJA.finditer(text))
    j = 0
    for start, end, tag in [*tags, (len(text), len(text), None)]:
        while j < len(jinja) and jinja[j].start() < start:
            issue = _control_flow(jinja[j], stack, text, path)
            if issue:
                yield issue
            j += 1
        while j < len(jinja) and jinja[j].start() < end:
            j += 1  # inside this tag's attributes: checked below
        if tag is None:
            break
        yield from _attribute_issues(text[start:end], start, text, path)
        if tag.group(4):
            continue
        if tag.group(1):
            if stack and stack[-1] == tag.group(2):
                stack.pop()
        else:
            stack.append(tag.group(2))


def _control_flow(match: re.Match[str], stack: list[str], text: str, path: str) -> LintIssue | None:
    if not match.group(0).startswith("{%"):
        return None
    line, col = line_col(text, match.start())
    if stack[-2:] == ["mj-column", "mj-raw"]:
        message = (
            "MJML moves an <mj-raw> inside <mj-column> before the column's content, so "
            f"{match.group(0)} there wraps nothing: put the <mj-raw> around a whole <mj-section>"
        )
        return LintIssue(path, line, col, message)
    if stack and stack[-1] in TEXT_ELEMENTS:
        return None
    where = f"<{stack[-1]}>" if stack else "the top level"
    tag = match.group(0)
    message = f"Jinja control flow must sit inside <mj-raw> (found in {where}): "
    return LintIssue(path, line, col, message + f"wrap it as <mj-raw>{tag}</mj-raw>")


def _attribute_issues(tag_text: str, offset: int, text: str, path: str) -> Iterator[LintIssue]:
    for attr in _ATTRIBUTE.finditer(tag_text):
        name, value = attr.group(1), attr.group(3)
        if "{" not in value:
            continue
        line, col = line_col(text, offset + attr.start())
        if "{%" in value:
            yield LintIssue(path, line, col, f"no Jinja control flow inside attribute {name!r}")
        elif "{{" in value and name not in JINJA_ATTRIBUTES:
            yield LintIssue(
                path,
                line,
                col,
                f"no Jinja inside numeric or layout attribute "
                f"{name!r}: MJML computes layout at compile time (Jinja is allowed in "
                f"{', '.join(sorted(JINJA_ATTRIBUTES))})",
            )


def _limit_issues(text: str, *, path: str) -> list[LintIssue]:
    """A file over the size limit, or nested past the limits (checked before parsing)."""
    size = len(text.encode("utf-8"))
    if size > MAX_TEMPLATE_BYTES:
        message = f"template is {size} bytes; the limit is {MAX_TEMPLATE_BYTES}"
        return [LintIssue(path, 1, 1, message + " (move repeated markup into partials)")]
    problem = limits.nesting_problem(text)
    if problem is None:
        return []
    line, col = line_col(text, problem[0])
    return [LintIssue(path, line, col, problem[1])]


def lint_file(
    text: str, *, path: str, mjml: bool, bindings: Mapping[str, str | None] | None = None
) -> list[LintIssue]:
    """All issues of one template file (MJML rules only when ``mjml``)."""
    too_big = _limit_issues(text, path=path)
    if too_big:
        return too_big
    issues = _jinja_issues(text, path=path, bindings=bindings or {})
    if mjml:
        issues.extend(_mjml_issues(text, path=path))
    return sorted(issues, key=lambda i: (i.path, i.line, i.column))


def lint_template(source: TemplateSource) -> list[LintIssue]:
    """Lint every file of a template: the MJML, its partials, subject, preheader and text."""
    name = source.name
    issues = lint_file(source.mjml, path=f"{name}/template.mjml", mjml=True)
    for part, text in (("subject", source.subject), ("preheader", source.preheader)):
        issues += lint_file(text, path=f"{name}/{part}.txt", mjml=False)
    issues += lint_file(source.text, path=f"{name}/text.txt", mjml=False)
    for path, text in sorted(source.partials.items()):
        issues += lint_file(text, path=path, mjml=True, bindings=PARTIAL_BINDINGS)
    if not any(i.severity == "error" for i in issues):
        issues += _compiled_issues(source)
    return issues


def _compiled_issues(source: TemplateSource) -> list[LintIssue]:
    """Compile the template as a run would; its HTML must stay under MAX_COMPILED_BYTES."""
    path = f"{source.name}/template.mjml"
    try:
        html = compile_mjml(source)
        compiled = compile_template(source, html_source=html)
    except CompileError as exc:
        return [LintIssue(exc.path, exc.line or 1, exc.column or 1, str(exc).split(": ", 1)[-1])]
    size = len(compiled.html_source.encode("utf-8"))
    if size > MAX_COMPILED_BYTES:
        message = f"the compiled HTML is {size} bytes; the limit is {MAX_COMPILED_BYTES}"
        return [LintIssue(path, 1, 1, message + " (fewer or smaller sections)")]
    return []
