"""Compile a template version once: MJML -> HTML with ``mrml``, then Jinja -> template objects.

A template is a folder (or a database row) with four sources: ``template.mjml``, ``subject.txt``,
``preheader.txt`` and ``text.txt``; MJML partials are pulled in with
``<mj-include path="partials/NAME.mjml" />`` and expanded before compiling.

    load_template_source(name_or_path, *, directory=TEMPLATES_DIR) -> TemplateSource
    compile_template(source, *, strict=False) -> CompiledTemplate
    TemplateCache(directory=None).get(source, *, strict=False) -> CompiledTemplate

The cache key is a SHA-256 over every source, every partial and ``ENGINE_VERSION`` (mrml
version + our pre-processing version), so a template version compiles once per process (and
once per machine when ``directory`` is given). Compile errors raise ``CompileError`` with the
file, line and column.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from importlib.metadata import version
from pathlib import Path

import mrml
from jinja2 import Template, TemplateSyntaxError

from newsletter.render.qp import prepare_html
from newsletter.render.sandbox import environment

_PACKAGE = Path(__file__).resolve().parents[1]
# A wheel ships the templates under newsletter/_shipped/; a checkout has them at the root.
TEMPLATES_DIR = next(
    (p for p in (_PACKAGE / "_shipped" / "templates", _PACKAGE.parent / "templates") if p.is_dir()),
    _PACKAGE.parent / "templates",
)
ENGINE_VERSION = f"mrml-{version('mrml')}+newsletter-2"
PARTS = ("template.mjml", "subject.txt", "preheader.txt", "text.txt")
_INCLUDE = re.compile(r'<mj-include\s+path="([^"]+)"\s*/>')
_JINJA = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.DOTALL)
_RAW_BLOCK = re.compile(r"\{%-?\s*raw\s*-?%\}")
_MJ_TAG = re.compile(r"<(/?)(mj(?:ml|-[a-z-]+))\b((?:[^>\"']|\"[^\"]*\"|'[^']*')*?)(/?)>")
KNOWN_TAGS = frozenset(
    [
        "mjml",
        "mj-head",
        "mj-body",
        "mj-attributes",
        "mj-all",
        "mj-class",
        "mj-breakpoint",
        "mj-font",
        "mj-preview",
        "mj-style",
        "mj-title",
        "mj-raw",
        "mj-include",
        "mj-section",
        "mj-column",
        "mj-group",
        "mj-wrapper",
        "mj-hero",
        "mj-text",
        "mj-button",
        "mj-image",
        "mj-divider",
        "mj-spacer",
        "mj-table",
        "mj-social",
        "mj-social-element",
        "mj-navbar",
        "mj-navbar-link",
        "mj-carousel",
        "mj-carousel-image",
        "mj-accordion",
        "mj-accordion-element",
        "mj-accordion-title",
        "mj-accordion-text",
    ]
)


class CompileError(ValueError):
    """An MJML or Jinja source does not compile; names file, line and column."""

    def __init__(self, message: str, *, path: str, line: int | None, column: int | None = None):
        self.path, self.line, self.column = path, line, column
        where = path if line is None else f"{path}:{line}:{column or 1}"
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True)
class TemplateSource:
    """The four sources of one template version, plus the MJML partials it may include."""

    name: str
    mjml: str
    subject: str
    preheader: str
    text: str
    partials: Mapping[str, str] = field(default_factory=dict)

    @cached_property
    def digest(self) -> str:
        """SHA-256 over all sources, partials and the engine version: the compile cache key."""
        h = hashlib.sha256(ENGINE_VERSION.encode())
        for part in (self.mjml, self.subject, self.preheader, self.text):
            h.update(b"\x00" + part.encode("utf-8"))
        for path in sorted(self.partials):
            h.update(b"\x01" + path.encode() + b"\x00" + self.partials[path].encode("utf-8"))
        return h.hexdigest()


@dataclass(frozen=True)
class CompiledTemplate:
    """A template version ready to render many messages (Jinja objects over compiled HTML)."""

    name: str
    key: str
    html_source: str
    html: Template
    html_qp: Template
    subject: Template
    preheader: Template
    text: Template
    strict: bool = False


def load_template_source(name: str | Path, *, directory: Path = TEMPLATES_DIR) -> TemplateSource:
    """Read a template folder (a shipped name like 'digest', or a path) and the shared partials.

    The files are read again only when one of them changed (size or modification time), so
    a route that looks the template up on every request stats the files instead of reading.
    """
    folder = Path(name) if Path(name).is_dir() else directory / str(name)
    if not (folder / "template.mjml").is_file():
        shipped = sorted(p.name for p in directory.iterdir() if (p / "template.mjml").is_file())
        raise FileNotFoundError(
            f"no template {str(name)!r}: expected {folder}/template.mjml "
            f"(shipped templates: {', '.join(shipped) or 'none'})"
        )
    partials: dict[str, Path] = {}
    for root in dict.fromkeys([folder.parent, directory]):  # the template's own partials win
        for path in sorted((root / "partials").glob("*.mjml")):
            partials.setdefault(f"partials/{path.name}", path)
    files = tuple((folder / part, part) for part in PARTS) + tuple(
        (path, key) for key, path in partials.items()
    )
    return _read_template(folder.name, tuple((path, key, _stamp(path)) for path, key in files))


def _stamp(path: Path) -> tuple[int, int]:
    """(size, modification time): what says a template file changed since it was read."""
    found = path.stat()
    return found.st_size, found.st_mtime_ns


@lru_cache(maxsize=64)
def _read_template(
    name: str, files: tuple[tuple[Path, str, tuple[int, int]], ...]
) -> TemplateSource:
    texts = {key: path.read_text(encoding="utf-8") for path, key, _ in files}
    return TemplateSource(
        name=name,
        mjml=texts.pop("template.mjml"),
        subject=texts.pop("subject.txt"),
        preheader=texts.pop("preheader.txt"),
        text=texts.pop("text.txt"),
        partials=texts,
    )


def line_col(source: str, offset: int) -> tuple[int, int]:
    """1-based line and column of a character offset."""
    line = source.count("\n", 0, offset) + 1
    return line, offset - (source.rfind("\n", 0, offset) + 1) + 1


def expand_includes(source: str, partials: Mapping[str, str], *, path: str, depth: int = 0) -> str:
    """Replace ``<mj-include path="..."/>`` with the partial's text (recursively, max depth 5)."""

    def include(match: re.Match[str]) -> str:
        name = match.group(1).removeprefix("./")
        if name not in partials:
            line, col = line_col(source, match.start())
            known = ", ".join(sorted(partials)) or "none"
            raise CompileError(
                f"unknown partial {name!r} (known: {known})", path=path, line=line, column=col
            )
        if depth >= 5:
            raise CompileError("partials nest deeper than 5 levels", path=name, line=None)
        return expand_includes(partials[name], partials, path=name, depth=depth + 1)

    return _INCLUDE.sub(include, source)


def check_structure(source: str, *, path: str) -> None:
    """Find unknown or unbalanced MJML tags and raise CompileError at their line and column."""
    masked = _JINJA.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), source)
    stack: list[tuple[str, int]] = []
    for match in _MJ_TAG.finditer(masked):
        closing, tag, self_closing = match.group(1), match.group(2), match.group(4)
        line, col = line_col(source, match.start())
        if tag not in KNOWN_TAGS:
            raise CompileError(f"unknown MJML element <{tag}>", path=path, line=line, column=col)
        if self_closing:
            continue
        if not closing:
            stack.append((tag, match.start()))
        elif not stack or stack[-1][0] != tag:
            expected = f"</{stack[-1][0]}>" if stack else "nothing"
            raise CompileError(
                f"</{tag}> closes nothing open here (expected {expected})",
                path=path,
                line=line,
                column=col,
            )
        else:
            stack.pop()
    if stack:
        tag, offset = stack[-1]
        line, col = line_col(source, offset)
        raise CompileError(f"<{tag}> is never closed", path=path, line=line, column=col)


def compile_mjml(source: TemplateSource) -> str:
    """Expand partials and compile the MJML to HTML with mrml (Jinja passes through verbatim)."""
    path = f"{source.name}/template.mjml"
    check_structure(source.mjml, path=path)
    for name, text in source.partials.items():
        check_structure(f"<mj-wrapper>{text}</mj-wrapper>", path=name)
    expanded = expand_includes(source.mjml, source.partials, path=path)
    options = mrml.RenderOptions(disable_comments=True, fonts={})
    try:
        return mrml.to_html(expanded, render_options=options).content
    except OSError as exc:
        where = locate_mjml_error(source.mjml)
        line, col, hint = where if where else (None, None, "")
        message = f"MJML does not compile: {exc}{hint}"
        raise CompileError(message, path=path, line=line, column=col) from exc


_SUSPECTS = (
    (re.compile(r"<!--(?![\s\S]*?-->)"), "; this comment is never closed"),
    (re.compile(r"<mj-[a-z-]+\b[^>]*?\s[\w-]+=(?=[^\s\"'>])"), "; quote attribute values"),
    (re.compile(r"<(?![a-zA-Z/!])"), "; write a literal '<' as &lt;"),
    (re.compile(r"</mjml>\s*\S"), "; nothing may follow </mjml>"),
)


def locate_mjml_error(source: str) -> tuple[int, int, str] | None:
    """Best guess at where mrml (which reports no position) stumbled, with a hint."""
    masked = _JINJA.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), source)
    found = []
    for pattern, hint in _SUSPECTS:
        match = pattern.search(masked)
        if match:
            found.append((match.start(), hint))
    if not found:
        return None
    offset, hint = min(found)
    line, col = line_col(source, offset)
    return line, col, hint


def _jinja(text: str, *, html: bool, strict: bool, path: str, qp: bool = False) -> Template:
    try:
        return environment(html=html, strict=strict, qp=qp).from_string(text)
    except TemplateSyntaxError as exc:
        raise CompileError(f"Jinja syntax: {exc.message}", path=path, line=exc.lineno) from exc
    except (RecursionError, MemoryError, SyntaxError) as exc:  # Jinja's or Python's compiler
        message = "the template nests too deeply to compile (see the limits in the linter)"
        raise CompileError(message, path=path, line=None) from exc


def compile_template(
    source: TemplateSource, *, strict: bool = False, html_source: str | None = None
) -> CompiledTemplate:
    """Compile all four parts (MJML once, unless ``html_source`` was cached) into Jinja objects."""
    name = source.name
    raw = _RAW_BLOCK.search(source.mjml)
    if raw:
        line, col = line_col(source.mjml, raw.start())
        raise CompileError(
            "{% raw %} is not supported in MJML templates",
            path=f"{name}/template.mjml",
            line=line,
            column=col,
        )
    _jinja(source.mjml, html=True, strict=strict, path=f"{name}/template.mjml")
    html = compile_mjml(source) if html_source is None else html_source
    return CompiledTemplate(
        name=name,
        key=source.digest,
        html_source=html,
        html=_jinja(html, html=True, strict=strict, path=f"{name}/template.mjml (compiled)"),
        html_qp=_jinja(
            prepare_html(html), html=True, qp=True, strict=strict, path=f"{name}/template.mjml"
        ),
        subject=_jinja(source.subject, html=False, strict=strict, path=f"{name}/subject.txt"),
        preheader=_jinja(source.preheader, html=False, strict=strict, path=f"{name}/preheader.txt"),
        text=_jinja(source.text, html=False, strict=strict, path=f"{name}/text.txt"),
        strict=strict,
    )


class TemplateCache:
    """Compile-once cache keyed by source digest (+ strictness); optionally persists HTML."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory
        self._compiled: dict[tuple[str, bool], CompiledTemplate] = {}

    def get(self, source: TemplateSource, *, strict: bool = False) -> CompiledTemplate:
        """The compiled template for this exact source, compiling only on first sight."""
        key = (source.digest, strict)
        found = self._compiled.get(key)
        if found is None:
            found = compile_template(source, strict=strict, html_source=self._load(key[0]))
            self._store(key[0], found.html_source)
            self._compiled[key] = found
        return found

    def _load(self, digest: str) -> str | None:
        if self.directory is None:
            return None
        path = self.directory / f"{digest}.html"
        return path.read_text(encoding="utf-8") if path.is_file() else None

    def _store(self, digest: str, html: str) -> None:
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)
            path = self.directory / f"{digest}.html"
            if not path.exists():
                tmp = path.with_suffix(".tmp")
                tmp.write_text(html, encoding="utf-8")
                tmp.replace(path)

    def __len__(self) -> int:
        return len(self._compiled)
