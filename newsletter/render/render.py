"""Render one message: Jinja over compiled HTML, signed links, pixel, text part, headers, bytes.

The dispatcher's entry point::

    compiled = TemplateCache().get(load_template_source("digest"))      # once per version
    context = build_context(render_input, settings=settings)              # once per message
    rendered = render_message(compiled, context, settings=settings, now=now)
    smtp.sendmail(sender, [rendered.recipient], rendered.bytes)

``RenderedMessage.bytes`` is the CRLF-serialized RFC 5322 message (multipart/alternative,
text/plain then text/html, UTF-8, quoted-printable) with From, To, Subject, Date, Message-ID
(derived from the message id, so a retry reuses it), List-Unsubscribe (https one-click + mailto),
List-Unsubscribe-Post (RFC 8058), List-Id and Feedback-ID (``campaign:run:arm code:sender``,
the arm as an opaque code, see ``plan.experiments.feedback_code``). Rendering failures raise
``RenderError``; sandbox violations raise its subclass ``TemplateSecurityError``.
"""

from __future__ import annotations

import builtins
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime, parseaddr
from functools import cached_property, lru_cache
from typing import Any

from jinja2 import Template

from newsletter.config import Settings
from newsletter.plan.experiments import feedback_code
from newsletter.render import limits, qp
from newsletter.render.compile import CompiledTemplate
from newsletter.render.context import slot_urls
from newsletter.render.links import LinkRewriter, MessageLinks, rewrite_text_links
from newsletter.render.mime import assemble, encode_address, format_address
from newsletter.render.sandbox import RenderError, describe_error

GMAIL_CLIP_BYTES = 102_000


@dataclass(frozen=True)
class RenderedMessage:
    """Everything the dispatcher needs to send one message, and the preview needs to show it.

    ``html_qp`` is the HTML body exactly as sent (quoted-printable); ``html`` decodes it on
    first access, so the hot path never pays for it.
    """

    subject: str
    preheader: str
    html_qp: str
    text: str
    headers: tuple[tuple[str, str], ...]
    message_id_header: str
    recipient: str
    bytes: builtins.bytes
    warnings: tuple[str, ...] = ()

    @cached_property
    def html(self) -> str:
        """The plain HTML part (decoded from ``html_qp``)."""
        return _plain_html(self.html_qp)


def _render(template: Template, context: Mapping[str, Any], *, name: str) -> str:
    """One part, bounded in output size (and, inside ``limits.deadline``, in time)."""
    try:
        chunks = template.root_render_func(template.new_context(dict(context)))
        return limits.generate_bounded(chunks, name=name)
    except Exception as exc:  # every template failure becomes a RenderError naming the part
        raise describe_error(exc, template=name) from exc


def sender_domain(settings: Settings) -> str:
    """The domain of the From address (for Message-ID, List-Id and the mailto unsubscribe)."""
    return _sender(settings.sender)[1]


@lru_cache(maxsize=16)
def _sender(sender: str) -> tuple[str, str]:
    """The encoded From header and the sender's domain (parsed once per sender string)."""
    return encode_address(sender), parseaddr(sender)[1].rpartition("@")[2] or "localhost"


def message_id_header(message_id: int | str, *, settings: Settings) -> str:
    """A Message-ID derived from the message id and the install's key: stable across retries."""
    tag = hashlib.sha256(f"{settings.secret_key}\x00{message_id}".encode()).hexdigest()[:12]
    return f"<nl.{message_id}.{tag}@{sender_domain(settings)}>"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "newsletter"


def feedback_id(context: Mapping[str, Any], *, settings: Settings) -> str:
    """``campaign id:run id:arm code:sender``, Gmail's feedback-loop format (the sender last).

    The arm is an opaque code, so the recipient cannot tell their experiment group; ``why``
    and the report show which code is which arm.
    """
    code = feedback_code(str(context["message"]["arm"]), secret_key=settings.secret_key)
    domain = _slug(sender_domain(settings))
    return f"{context['campaign']['id']}:{context['run']['id']}:{code}:{domain}"


def build_headers(
    context: Mapping[str, Any], *, subject: str, settings: Settings, now: datetime
) -> tuple[tuple[str, str], ...]:
    """The message headers, values unencoded (``mime.assemble`` encodes and folds them)."""
    domain = sender_domain(settings)
    subscriber, campaign = context["subscriber"], context["campaign"]
    unsubscribe = context["unsubscribe_url"]
    token = unsubscribe.rstrip("/").rpartition("/")[2]
    list_name = campaign.get("display_name", campaign["name"]).replace('"', "'")
    return (
        ("From", _sender(settings.sender)[0]),
        ("To", format_address(subscriber["name"], subscriber["email"])),
        ("Subject", subject),
        ("Date", format_datetime(now)),
        ("Message-ID", message_id_header(context["message"]["id"], settings=settings)),
        (
            "List-Unsubscribe",
            f"<{unsubscribe}>, <mailto:unsubscribe@{domain}?subject=unsubscribe%20{token}>",
        ),
        ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
        ("List-Id", f'"{list_name}" <{_slug(campaign["name"])}.{domain}>'),
        ("Feedback-ID", feedback_id(context, settings=settings)),
    )


def _tidy_text(text: str) -> str:
    """Strip trailing spaces, collapse runs of blank lines, end with one newline."""
    text = "\n".join([line.rstrip() for line in text.replace("\r\n", "\n").split("\n")])
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    return text.strip() + "\n"


def render_parts(
    compiled: CompiledTemplate, context: Mapping[str, Any], *, settings: Settings
) -> tuple[str, str, str, str]:
    """Subject, preheader, QP-encoded HTML (tracked links + pixel) and text (tracked links),
    all within one message's render time limit (``limits.RENDER_SECONDS``)."""
    with limits.deadline():
        return _render_parts(compiled, context, settings=settings)


def _render_parts(
    compiled: CompiledTemplate, context: Mapping[str, Any], *, settings: Settings
) -> tuple[str, str, str, str]:
    name = compiled.name
    subject = " ".join(_render(compiled.subject, context, name=f"{name}/subject.txt").split())
    preheader, html_qp, rewriter = _render_html_qp(compiled, context, settings=settings)
    text = _tidy_text(_render(compiled.text, context, name=f"{name}/text.txt"))
    text = rewrite_text_links(text, rewriter=rewriter)
    return subject, preheader, html_qp, text


def _render_html_qp(
    compiled: CompiledTemplate, context: Mapping[str, Any], *, settings: Settings
) -> tuple[str, str, LinkRewriter]:
    """The preheader, the QP-encoded HTML and the message's link signer (for the text part)."""
    name = compiled.name
    preheader = " ".join(_render(compiled.preheader, context, name=f"{name}/preheader.txt").split())
    links = MessageLinks(
        base_url=settings.base_url,
        secret_key=settings.secret_key,
        message_id=context["message"]["id"],
    )
    rewriter = LinkRewriter(links, slot_urls(context))
    extra = {
        "preheader": preheader,
        qp.PIXEL_VAR: links.open_pixel(),
        qp.HONEYPOT_VAR: links.honeypot(),  # a signed URL, like the pixel: no key in the context
    }
    with qp.signing_links(rewriter):  # the signer stays outside the template's reach
        html_qp = _render(compiled.html_qp, {**context, **extra}, name=f"{name}/template.mjml")
    return preheader, html_qp, rewriter


def render_html(
    compiled: CompiledTemplate, context: Mapping[str, Any], *, settings: Settings
) -> str:
    """Only the HTML part, exactly as :func:`render_message` sends it (``RenderedMessage.html``):
    the view-in-browser page needs nothing else, so subject, text and headers are skipped."""
    with limits.deadline():
        return _plain_html(_render_html_qp(compiled, context, settings=settings)[1])


def _plain_html(html_qp: str) -> str:
    """The HTML a browser shows for the QP-encoded part (one decoding for both callers)."""
    return qp.decode(html_qp).replace("\r\n", "\n")


def _warnings(subject: str, html_qp: str) -> tuple[str, ...]:
    found = []
    if len(subject) > 150:
        found.append(f"the subject is {len(subject)} characters long (keep it under ~80)")
    if len(html_qp) > GMAIL_CLIP_BYTES:
        found.append(f"the HTML is {len(html_qp) // 1000} KB: Gmail clips messages over 102 KB")
    return tuple(found)


def render_message(
    compiled: CompiledTemplate,
    context: Mapping[str, Any],
    *,
    settings: Settings,
    now: datetime,
) -> RenderedMessage:
    """Render one message from a compiled template and a frozen context into SMTP-ready bytes."""
    subject, preheader, html_qp, text = render_parts(compiled, context, settings=settings)
    if not subject:
        raise RenderError(f"{compiled.name}/subject.txt rendered an empty subject")
    try:
        headers = build_headers(context, subject=subject, settings=settings, now=now)
    except ValueError as exc:
        raise RenderError(f"message {context['message']['id']}: {exc}") from exc
    mid = dict(headers)["Message-ID"]
    boundary = "=_nl_" + hashlib.sha256(mid.encode()).hexdigest()[:24]
    data = assemble(headers=headers, text=text, html_qp=html_qp, boundary=boundary)
    return RenderedMessage(
        subject=subject,
        preheader=preheader,
        html_qp=html_qp,
        text=text,
        headers=headers,
        message_id_header=mid,
        recipient=context["subscriber"]["email"],
        bytes=data,
        warnings=_warnings(subject, html_qp),
    )
