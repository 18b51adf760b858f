"""Send one test email of a template to an address, rendered as a subscriber would get it.

    send_test(engine, *, template, to, settings, now, subscriber=None, transport_url=None)

The message is rendered like a preview (the subscriber's latest planned message, else their
real row and real items in the sample digest, else the sample digest; see
``render.preview.preview_input``), addressed to ``to``, marked as a test (``[TEST]`` subject
prefix, ``X-Newsletter-Test`` header) and handed to the configured transport. Its links and
pixel carry a message id that is not a database id, so nothing it triggers (opens, clicks,
unsubscribes) is recorded, and no run or message row is written.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from email.utils import parseaddr

from newsletter.config import Settings
from newsletter.db import Engine
from newsletter.deliver.transport import OutgoingMessage, transport_from_url
from newsletter.enums import MessageStatus
from newsletter.render.compile import compile_template
from newsletter.render.context import build_context
from newsletter.render.lint import lint_template
from newsletter.render.mime import assemble
from newsletter.render.preview import PreviewError, find_template, preview_input
from newsletter.render.render import RenderedMessage, render_message

SUBJECT_PREFIX = "[TEST] "
TEST_HEADER = "X-Newsletter-Test"


class SendTestError(ValueError):
    """The transport did not accept the test email; the message says what it answered."""


class AddressError(SendTestError):
    """``to`` is not an email address."""


@dataclass(frozen=True)
class TestSend:
    """What was sent: to whom, the subject, where the data came from, the transport's answer."""

    to: str
    subject: str
    data_note: str
    status: str
    detail: str


def _marked(rendered: RenderedMessage, *, to: str) -> tuple[str, bytes]:
    """The message re-assembled for `to`, with the test subject prefix and header."""
    headers = []
    subject = SUBJECT_PREFIX + rendered.subject
    for name, value in rendered.headers:
        if name == "Subject":
            value = subject
        elif name == "To":
            value = to
        headers.append((name, value))
    headers.append((TEST_HEADER, "yes; opens, clicks and unsubscribes are not recorded"))
    mid = dict(rendered.headers)["Message-ID"]
    boundary = "=_nl_" + hashlib.sha256(mid.encode()).hexdigest()[:24]
    data = assemble(
        headers=tuple(headers), text=rendered.text, html_qp=rendered.html_qp, boundary=boundary
    )
    return subject, data


def _address(to: str) -> str:
    address = parseaddr(to)[1]
    if "@" not in address or address != to.strip():
        raise AddressError(f"--to {to!r} is not an email address (e.g. you@example.com)")
    return address


def send_test(
    engine: Engine | None,
    *,
    template: str,
    to: str,
    settings: Settings,
    now: datetime,
    subscriber: int | None = None,
    transport_url: str | None = None,
) -> TestSend:
    """Render `template` for `subscriber` (or sample data), mark it a test, send it to `to`."""
    address = _address(to)
    source = find_template(template, engine=engine)
    errors = [str(i) for i in lint_template(source) if i.severity == "error"]
    if errors:
        raise PreviewError("template has errors:\n  " + "\n  ".join(errors))
    kind = "trigger" if source.name.startswith("trigger") else "digest"
    data, (_, note) = preview_input(engine, subscriber=subscriber, kind=kind)
    data["message_id"] = f"test-{int(now.timestamp())}"  # not a database id: nothing records
    rendered = render_message(
        compile_template(source), build_context(data, settings=settings), settings=settings, now=now
    )
    subject, payload = _marked(rendered, to=address)
    sender = parseaddr(settings.sender)[1]
    with transport_from_url(transport_url or settings.smtp_url) as transport:
        result = transport.send(OutgoingMessage(data["message_id"], sender, [address], payload))
    if result.status != MessageStatus.sent:
        detail = f"{result.code or ''} {result.detail or ''}".strip()
        raise SendTestError(f"the mail server did not accept the test email to {address}: {detail}")
    return TestSend(address, subject, note, result.status, str(result.detail or ""))
