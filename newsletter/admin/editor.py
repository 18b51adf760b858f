"""Template editing: drafts saved as immutable versions, history, diff, restore and publish.

    overview(engine) -> [TemplateSummary]        # database and shipped templates
    open_template(engine, *, name) -> EditorState
    save_draft(engine, *, name, draft, author, now) -> Saved   # lint issues come back
    publish(engine, *, name, version, author, now)             # PublishError on lint errors
    restore(engine, *, name, version, author, now) -> int      # a new version, old content
    diff(engine, *, name, old, new) -> [PartDiff]
    lint_draft(name, draft) -> [Issue]

A shipped template (``templates/NAME``) is edited by saving a first version of it in the
database; until a version is published, runs keep using the shipped files. Only a version
without lint errors, which compiles, can be published.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime

from newsletter.db import Engine
from newsletter.render.compile import (
    TEMPLATES_DIR,
    CompileError,
    TemplateSource,
    compile_template,
    load_template_source,
)
from newsletter.render.lint import lint_template
from newsletter.store import templates as store

PARTS = ("mjml", "subject", "preheader", "text")
PART_FILES = {
    "template.mjml": "mjml",
    "subject.txt": "subject",
    "preheader.txt": "preheader",
    "text.txt": "text",
}
PART_LABELS = {"mjml": "MJML", "subject": "Subject", "preheader": "Preheader", "text": "Text part"}
KINDS = ("digest", "trigger")
NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


class EditorError(ValueError):
    """The request cannot be done as asked; the message names the input and the fix."""


class PublishError(EditorError):
    """The version has lint or compile errors and was not published."""

    def __init__(self, message: str, issues: list[Issue]) -> None:
        super().__init__(message)
        self.issues = issues


@dataclass(frozen=True)
class Draft:
    """The four sources of a template as the editor holds them."""

    mjml: str
    subject: str
    preheader: str
    text: str

    @property
    def digest(self) -> str:
        h = hashlib.sha256()
        for part in (self.mjml, self.subject, self.preheader, self.text):
            h.update(b"\x00" + part.encode("utf-8"))
        return h.hexdigest()


@dataclass(frozen=True)
class Issue:
    """A lint, compile or render finding in one part, at a 1-based line and column."""

    part: str  # mjml | subject | preheader | text | partial
    line: int
    column: int
    message: str
    severity: str = "error"
    path: str = ""

    def as_dict(self) -> dict[str, object]:
        return {
            "part": self.part,
            "line": self.line,
            "column": self.column,
            "message": self.message,
            "severity": self.severity,
            "path": self.path,
        }


@dataclass(frozen=True)
class TemplateSummary:
    name: str
    kind: str
    published: int | None
    latest: int | None
    shipped: bool
    updated_at: datetime | None


@dataclass
class EditorState:
    """What the editor page shows for one template."""

    name: str
    kind: str
    draft: Draft
    version: int | None  # the version the draft is (None: the shipped files)
    published: int | None
    shipped: bool
    versions: list[store.VersionRow] = field(default_factory=list)
    publications: list[store.Publication] = field(default_factory=list)


@dataclass(frozen=True)
class Saved:
    version: int
    created: bool  # False: nothing changed since the newest version
    issues: list[Issue]


@dataclass(frozen=True)
class PartDiff:
    part: str
    lines: list[tuple[str, str]]  # (add | del | ctx | hunk, text)


def check_name(name: str) -> str:
    """A template name as typed, validated (lowercase letters, digits, '-' and '_')."""
    if not NAME.match(name):
        raise EditorError(
            f"template name {name!r}: use lowercase letters, digits, '-' and '_' "
            "(e.g. spring-digest)"
        )
    return name


def shipped_names() -> list[str]:
    """The templates shipped as folders (``templates/NAME/template.mjml``)."""
    return sorted(p.name for p in TEMPLATES_DIR.iterdir() if (p / "template.mjml").is_file())


def _shipped_draft(name: str) -> Draft:
    source = load_template_source(name)
    return Draft(source.mjml, source.subject, source.preheader, source.text)


def source_of(name: str, draft: Draft) -> TemplateSource:
    """The draft as a template source, with the shipped partials."""
    partials = load_template_source("digest").partials
    return TemplateSource(name, draft.mjml, draft.subject, draft.preheader, draft.text, partials)


def overview(engine: Engine) -> list[TemplateSummary]:
    """Every template: those in the database and the shipped ones not edited yet."""
    rows = {r.name: r for r in store.list_templates(engine)}
    shipped = set(shipped_names())
    out = [
        TemplateSummary(r.name, r.kind, r.published, r.latest, r.name in shipped, r.updated_at)
        for r in rows.values()
    ]
    for name in sorted(shipped - set(rows)):
        kind = "trigger" if name.startswith("trigger") else "digest"
        out.append(TemplateSummary(name, kind, None, None, True, None))
    return sorted(out, key=lambda t: t.name)


def open_template(engine: Engine, *, name: str, version: int | None = None) -> EditorState:
    """The newest version (or `version`) of a template, with its history."""
    row = store.find_template(engine, name=name)
    shipped = name in shipped_names()
    if row is None or row.latest is None:
        if not shipped:
            raise EditorError(f"no template {name!r}; create it on the templates page")
        kind = row.kind if row else ("trigger" if name.startswith("trigger") else "digest")
        return EditorState(name, kind, _shipped_draft(name), None, None, True)
    found = store.get_version(engine, template_id=row.id, version=version)
    if found is None:
        raise EditorError(f"template {name!r} has no version {version}")
    return EditorState(
        name=name,
        kind=row.kind,
        draft=Draft(found.mjml, found.subject, found.preheader, found.text),
        version=found.version,
        published=row.published,
        shipped=shipped,
        versions=store.list_versions(engine, template_id=row.id),
        publications=store.list_publications(engine, template_id=row.id),
    )


def template_kind(engine: Engine, *, name: str) -> str:
    """A template's kind (digest or trigger); shipped names tell by their name."""
    row = store.find_template(engine, name=name)
    if row is not None:
        return row.kind
    if name not in shipped_names():
        raise EditorError(f"no template {name!r}; create it on the templates page")
    return "trigger" if name.startswith("trigger") else "digest"


def create_template(engine: Engine, *, name: str, kind: str, author: str, now: datetime) -> int:
    """A new template whose version 1 is a copy of the shipped template of its kind."""
    check_name(name)
    if kind not in KINDS:
        raise EditorError(f"kind {kind!r}: use digest or trigger")
    if store.find_template(engine, name=name) is not None or name in shipped_names():
        raise EditorError(f"a template called {name!r} exists already; pick another name")
    return save_draft(
        engine, name=name, draft=_shipped_draft(kind), author=author, now=now, kind=kind
    ).version


def _issue(path: str, line: int, column: int, message: str, severity: str) -> Issue:
    part = PART_FILES.get(path.rsplit("/", 1)[-1], "partial")
    part = "partial" if path.startswith("partials/") else part
    return Issue(part, line, column, message, severity, path)


def lint_draft(name: str, draft: Draft) -> list[Issue]:
    """Lint findings of a draft (every part), then a compile error if it does not compile."""
    source = source_of(name, draft)
    issues = [
        _issue(i.path, i.line, i.column, i.message, i.severity) for i in lint_template(source)
    ]
    if any(i.severity == "error" for i in issues):
        return issues
    try:
        compile_template(source, strict=True)
    except CompileError as exc:
        message = str(exc).split(": ", 1)[-1]
        issues.append(_issue(exc.path, exc.line or 1, exc.column or 1, message, "error"))
    return issues


def save_draft(
    engine: Engine, *, name: str, draft: Draft, author: str, now: datetime, kind: str | None = None
) -> Saved:
    """Save the draft as a new version (unless it equals the newest one); lint issues too."""
    check_name(name)
    row = store.find_template(engine, name=name)
    if row is None and name not in shipped_names() and kind is None:
        raise EditorError(f"no template {name!r}; create it on the templates page")
    default = "trigger" if name.startswith("trigger") else "digest"
    template_id = (
        row.id if row else store.ensure_template(engine, name=name, kind=kind or default, now=now)
    )
    issues = lint_draft(name, draft)
    newest = store.get_version(engine, template_id=template_id, version=None)
    if newest is not None and newest.source_hash == draft.digest:
        return Saved(newest.version, False, issues)
    number = store.add_version(
        engine,
        template_id=template_id,
        mjml=draft.mjml,
        subject=draft.subject,
        preheader=draft.preheader,
        text=draft.text,
        source_hash=draft.digest,
        author=author,
        now=now,
    )
    return Saved(number, True, issues)


def publish(engine: Engine, *, name: str, version: int, author: str, now: datetime) -> None:
    """Publish a saved version: the next run uses it. Refused while it has errors."""
    row = store.find_template(engine, name=name)
    found = store.get_version(engine, template_id=row.id, version=version) if row else None
    if row is None or found is None:
        raise EditorError(f"template {name!r} has no saved version {version}: save it first")
    draft = Draft(found.mjml, found.subject, found.preheader, found.text)
    errors = [i for i in lint_draft(name, draft) if i.severity == "error"]
    if errors:
        raise PublishError(
            f"version {version} of {name!r} has {len(errors)} error(s) and was not published: "
            "fix them, save, then publish",
            errors,
        )
    store.publish_version(engine, template_id=row.id, version=version, by=author, now=now)


def restore(engine: Engine, *, name: str, version: int, author: str, now: datetime) -> int:
    """Save an old version's content as the newest version (history is never rewritten)."""
    state = open_template(engine, name=name, version=version)
    if state.version is None:
        raise EditorError(f"template {name!r} has no saved version {version}")
    saved = save_draft(engine, name=name, draft=state.draft, author=author, now=now)
    return saved.version


def diff(engine: Engine, *, name: str, old: int, new: int) -> list[PartDiff]:
    """Line diffs, part by part, from version `old` to version `new` (unchanged parts left out)."""
    a = open_template(engine, name=name, version=old).draft
    b = open_template(engine, name=name, version=new).draft
    out = []
    for part in PARTS:
        before, after = getattr(a, part).splitlines(), getattr(b, part).splitlines()
        lines = []
        for line in difflib.unified_diff(before, after, lineterm="", n=2):
            if line.startswith(("---", "+++")):
                continue
            kind = {"@": "hunk", "+": "add", "-": "del"}.get(line[:1], "ctx")
            lines.append((kind, line))
        if lines:
            out.append(PartDiff(part, lines))
    return out
