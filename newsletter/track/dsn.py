"""Bounce reports (RFC 3464 DSN) and complaint reports (RFC 5965 ARF) read from mail files.

``parse_report(raw)`` turns one message into ``Feedback`` (``track.webhooks``):

- a ``multipart/report; report-type=delivery-status``: one item per recipient group of the
  ``message/delivery-status`` part: ``Action: failed`` with a 5.x.x ``Status`` is a bounce,
  ``failed`` with 4.x.x or ``Action: delayed`` a soft bounce, ``delivered`` a delivery
  (``relayed`` and ``expanded`` say nothing final and are skipped). The recipient is the
  ``Final-Recipient`` (else ``Original-Recipient``).
- a ``multipart/report; report-type=feedback-report``: a complaint for ``Feedback-Type`` abuse,
  fraud, virus or other (``not-spam`` is skipped), for ``Original-Rcpt-To`` or else the ``To``
  of the returned message.

Either way the Message-ID is taken from the returned message (``message/rfc822`` or
``text/rfc822-headers``), which is how the event finds our message. Anything else is not a
report and yields nothing.

``read_messages(path)`` yields the raw messages of a file (one message, or an mbox when it
starts with ``From ``), a Maildir (a folder with ``cur``/``new``), or a folder of files.
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import mailbox
from collections.abc import Iterator
from datetime import datetime
from email.message import Message
from email.parser import HeaderParser
from email.utils import getaddresses, parsedate_to_datetime
from pathlib import Path

from newsletter.db import as_utc
from newsletter.track.webhooks import Feedback

COMPLAINT_TYPES = ("abuse", "fraud", "virus", "other")
_HEADERS = HeaderParser(policy=email.policy.compat32)


def _blocks(part: Message) -> list[Message]:
    """The header blocks of a message/delivery-status or message/feedback-report part."""
    payload = part.get_payload()
    if isinstance(payload, list):
        return [p for p in payload if isinstance(p, Message)]
    text = str(payload or "").replace("\r\n", "\n")
    return [
        _HEADERS.parsestr(chunk.strip() + "\n") for chunk in text.split("\n\n") if chunk.strip()
    ]


def _returned_headers(report: Message) -> Message | None:
    """The headers of the message the report returns (rfc822 part or rfc822-headers part)."""
    for part in report.walk():
        ctype = part.get_content_type()
        if ctype == "message/rfc822":
            inner = part.get_payload()
            if isinstance(inner, list) and inner and isinstance(inner[0], Message):
                return inner[0]
        if ctype == "text/rfc822-headers":
            data = part.get_payload(decode=True)
            text = data.decode("utf-8", "replace") if isinstance(data, bytes) else ""
            return _HEADERS.parsestr(text)
    return None


def _address(value: str | None) -> str | None:
    """The address of a ``type; address`` DSN field (or a plain address)."""
    if not value:
        return None
    text = value.split(";", 1)[1] if ";" in value else value
    found = [a for _, a in getaddresses([text.strip()]) if "@" in a]
    return found[0].strip().lower() if found else None


def _when(*values: str | None) -> datetime | None:
    for value in values:
        if value:
            try:
                return as_utc(parsedate_to_datetime(value))
            except (TypeError, ValueError):
                continue
    return None


def _dsn_kind(action: str, status: str) -> str | None:
    action = action.strip().lower()
    if action == "failed":
        return "soft_bounce" if status.strip().startswith("4") else "bounce"
    return {"delayed": "soft_bounce", "delivered": "delivered"}.get(action)


def _dsn(report: Message, ident: str, mid: str | None, fallback: datetime) -> list[Feedback]:
    part = next(
        (p for p in report.walk() if p.get_content_type() == "message/delivery-status"), None
    )
    blocks = _blocks(part) if part is not None else []
    if not blocks:
        return []
    when = _when(blocks[0].get("Arrival-Date"), report.get("Date")) or fallback
    out = []
    for block in blocks[1:] if len(blocks) > 1 else blocks:
        kind = _dsn_kind(str(block.get("Action", "")), str(block.get("Status", "")))
        address = _address(block.get("Final-Recipient")) or _address(
            block.get("Original-Recipient")
        )
        if kind is None or address is None:
            continue
        detail = block.get("Diagnostic-Code") or block.get("Status")
        out.append(Feedback(kind, address, when, f"dsn:{ident}:{address}", mid, detail))
    return out


def _arf(report: Message, ident: str, mid: str | None, fallback: datetime) -> list[Feedback]:
    part = next(
        (p for p in report.walk() if p.get_content_type() == "message/feedback-report"), None
    )
    blocks = _blocks(part) if part is not None else []
    if not blocks:
        return []
    fields = blocks[0]
    if str(fields.get("Feedback-Type", "")).strip().lower() not in COMPLAINT_TYPES:
        return []
    returned = _returned_headers(report)
    address = _address(fields.get("Original-Rcpt-To")) or _address(
        returned.get("To") if returned is not None else None
    )
    if address is None:
        return []
    when = _when(fields.get("Arrival-Date"), fields.get("Received-Date"), report.get("Date"))
    kind = str(fields.get("Feedback-Type")).strip().lower()
    return [Feedback("complaint", address, when or fallback, f"arf:{ident}:{address}", mid, kind)]


def parse_report(raw: bytes, *, now: datetime) -> list[Feedback]:
    """The feedback in one raw message (empty when it is not a DSN or ARF report)."""
    report = email.message_from_bytes(raw, policy=email.policy.compat32)
    if report.get_content_type() != "multipart/report":
        return []
    own_id = str(report.get("Message-ID") or "").strip()
    ident = own_id.strip("<>") or hashlib.sha256(raw).hexdigest()[:32]
    returned = _returned_headers(report)
    mid = (
        str(returned.get("Message-ID"))
        if returned is not None and returned.get("Message-ID")
        else None
    )
    kind = str(report.get_param("report-type", "")).lower()
    if kind == "delivery-status":
        return _dsn(report, ident, mid, now)
    if kind == "feedback-report":
        return _arf(report, ident, mid, now)
    return []


def read_messages(path: Path) -> Iterator[tuple[str, bytes]]:
    """(name, raw bytes) of every message at ``path``: a file, an mbox, a Maildir or a folder."""
    if path.is_dir():
        if (path / "cur").is_dir() or (path / "new").is_dir():
            box = mailbox.Maildir(path, factory=None, create=False)
            for key in sorted(box.keys()):
                yield f"{path.name}/{key}", box.get_bytes(key)
            return
        for child in sorted(p for p in path.iterdir() if p.is_file()):
            yield from read_messages(child)
        return
    with path.open("rb") as handle:
        head = handle.read(5)
    if head == b"From ":
        mbox = mailbox.mbox(path, create=False)
        for n, key in enumerate(mbox.keys()):
            yield f"{path.name}#{n + 1}", mbox.get_bytes(key)
        return
    yield path.name, path.read_bytes()
