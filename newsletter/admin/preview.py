"""Live preview of an unsaved draft on a real subscriber, and test sends through the transport.

    live_preview(engine, *, settings, name, kind, draft, subscriber, now, inputs=None)
    send_test(engine, *, settings, name, kind, draft, to, subscriber, now) -> Message-ID

A real subscriber's preview uses their newest message: its real picks, sources and reasons
(with real items and sample reasons when they have no message yet); no subscriber means the
sample (fixture) subscriber. Every link and the open pixel are signed for a non-numeric
message id, so clicking around a preview or a test email records nothing. Rendering is strict
(``StrictUndefined``); lint, compile and render errors come back as issues with line numbers.
"""

from __future__ import annotations

import re
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from email.utils import parseaddr
from typing import Any

from newsletter.admin.editor import Draft, EditorError, Issue, lint_draft, source_of
from newsletter.config import Settings
from newsletter.db import Engine
from newsletter.deliver.transport import OutgoingMessage, TransportConfigError, transport_from_url
from newsletter.enums import MessageStatus
from newsletter.render.compile import CompileError, compile_template
from newsletter.render.context import ContextError, build_context
from newsletter.render.fixtures import fixture_input
from newsletter.render.preview import PreviewError, preview_input
from newsletter.render.render import RenderedMessage, render_message
from newsletter.render.sandbox import RenderError

_WHERE = re.compile(r"^(?P<path>[^,:]+?)(?:, line (?P<line>\d+))?: (?P<message>.*)$", re.DOTALL)
_NAMED = re.compile(r"'([A-Za-z_][\w]*)'")
_EMAIL = re.compile(r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$")
PART_BY_FILE = {"subject.txt": "subject", "preheader.txt": "preheader", "text.txt": "text"}


@dataclass
class LivePreview:
    """The rendered draft (html None when it has errors), its issues and its data's origin."""

    html: str | None
    subject: str = ""
    preheader: str = ""
    text: str = ""
    issues: list[Issue] = field(default_factory=list)
    data_label: str = ""
    milliseconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "html": self.html,
            "subject": self.subject,
            "preheader": self.preheader,
            "text": self.text,
            "issues": [i.as_dict() for i in self.issues],
            "data": self.data_label,
            "ms": round(self.milliseconds, 1),
        }


class PreviewInputs:
    """A small time-limited cache of subscribers' render input (one lookup per pause in typing)."""

    def __init__(self, *, size: int = 64, ttl: timedelta = timedelta(seconds=30)) -> None:
        self.size, self.ttl = size, ttl
        self._data: OrderedDict[tuple[int | None, str], tuple[datetime, dict, str]] = OrderedDict()

    def get(
        self, engine: Engine, *, subscriber: int | None, kind: str, now: datetime
    ) -> tuple[dict[str, Any], str]:
        key = (subscriber, kind)
        hit = self._data.get(key)
        if hit is None or now - hit[0] > self.ttl:
            data, label = _load_input(engine, subscriber=subscriber, kind=kind)
            hit = (now, data, label)
            self._data[key] = hit
            while len(self._data) > self.size:
                self._data.popitem(last=False)
        return hit[1], hit[2]


def resolve_subscriber(engine: Engine, text: str | None) -> int | None:
    """The subscriber an editor typed (id, email or key); None for the sample subscriber."""
    from newsletter.store.planning import subscriber_id

    text = (text or "").strip()
    if not text or text == "sample":
        return None
    found = subscriber_id(engine, key=text)
    if found is None:
        raise EditorError(f"no subscriber with id, email or key {text!r}")
    return found


def _load_input(engine: Engine, *, subscriber: int | None, kind: str) -> tuple[dict[str, Any], str]:
    """Render input and a sentence saying whose data it is."""
    if subscriber is None:
        return fixture_input(message_id="preview", kind=kind), "the sample subscriber (made up)"
    try:
        data, (origin, _) = preview_input(engine, subscriber=subscriber, kind=kind)
    except PreviewError as exc:
        raise EditorError(str(exc)) from exc
    email = data["subscriber"]["email"]
    if origin == "database":
        run, campaign = data["run"]["id"], data["campaign"]["name"]
        label = f"{email}: their newest message (run {run} of {campaign}), real picks and reasons"
    else:
        label = f"{email}: no message yet, so real items with sample reasons"
    return data, label


def _render_issue(exc: RenderError, draft: Draft) -> Issue:
    """A render failure as an issue in the part it names (MJML lines are guessed by name)."""
    found = _WHERE.match(str(exc))
    path, line = (found["path"], found["line"]) if found else ("", None)
    message = found["message"] if found else str(exc)
    part = PART_BY_FILE.get(path.rsplit("/", 1)[-1].split(" ")[0], "mjml")
    number = int(line) if line and part != "mjml" else 1
    if part == "mjml":
        for name in _NAMED.findall(message):
            at = draft.mjml.find(name)
            if at >= 0:
                number = draft.mjml.count("\n", 0, at) + 1
                break
    return Issue(part, number, 1, message, "error", path)


def _render(
    name: str, draft: Draft, data: dict[str, Any], *, settings: Settings, now: datetime
) -> tuple[RenderedMessage | None, list[Issue]]:
    issues = lint_draft(name, draft)
    if any(i.severity == "error" for i in issues):
        return None, issues
    try:
        compiled = compile_template(source_of(name, draft), strict=True)
        context = build_context(data, settings=settings)
        return render_message(compiled, context, settings=settings, now=now), issues
    except CompileError as exc:
        return None, [*issues, Issue("mjml", exc.line or 1, exc.column or 1, str(exc), "error")]
    except RenderError as exc:
        return None, [*issues, _render_issue(exc, draft)]
    except ContextError as exc:
        return None, [*issues, Issue("data", 1, 1, str(exc), "error")]


def live_preview(
    engine: Engine,
    *,
    settings: Settings,
    name: str,
    kind: str,
    draft: Draft,
    subscriber: int | None,
    now: datetime,
    inputs: PreviewInputs | None = None,
) -> LivePreview:
    """Lint, compile and render the draft strictly for one subscriber (or the sample one)."""
    started = time.perf_counter()
    cache = inputs or PreviewInputs()
    data, label = cache.get(engine, subscriber=subscriber, kind=kind, now=now)
    data = {**data, "message_id": "preview"}  # links and the pixel record nothing
    rendered, issues = _render(name, draft, data, settings=settings, now=now)
    result = LivePreview(html=None, issues=issues, data_label=label)
    if rendered is not None:
        result = replace(
            result,
            html=rendered.html,
            subject=rendered.subject,
            preheader=rendered.preheader,
            text=rendered.text,
        )
    result.milliseconds = 1000 * (time.perf_counter() - started)
    return result


def send_test(
    engine: Engine,
    *,
    settings: Settings,
    name: str,
    kind: str,
    draft: Draft,
    to: str,
    subscriber: int | None,
    now: datetime,
) -> str:
    """Render the draft for a subscriber and send it, subject marked [Test], to `to`."""
    to = to.strip()
    if not _EMAIL.match(to):
        raise EditorError(f"{to!r} is not an email address to send the test to")
    data, _ = _load_input(engine, subscriber=subscriber, kind=kind)
    person = {**data["subscriber"], "email": to}
    data = {**data, "subscriber": person, "message_id": f"test-{secrets.token_hex(6)}"}
    marked = replace(draft, subject="[Test] " + draft.subject)
    rendered, issues = _render(name, marked, data, settings=settings, now=now)
    if rendered is None:
        first = next(i for i in issues if i.severity == "error")
        raise EditorError(f"the draft has errors, nothing was sent: {first.message}")
    sender = parseaddr(settings.sender)[1]
    message = OutgoingMessage(data["message_id"], sender, [to], rendered.bytes)
    try:
        with transport_from_url(settings.smtp_url) as transport:
            result = transport.send(message)
    except TransportConfigError as exc:
        raise EditorError(f"smtp_url is not usable: {exc}") from exc
    if result.status != MessageStatus.sent:
        raise EditorError(
            f"the mail server did not take the test email ({result.code or ''} "
            f"{result.detail}); check smtp_url".replace("( ", "(")
        )
    return rendered.message_id_header
