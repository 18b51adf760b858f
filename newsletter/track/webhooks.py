"""Parse ESP bounce, complaint and delivery notifications into ``Feedback`` (pure, no I/O).

Each provider's payload (already verified, ``track.signatures``) becomes one ``Feedback`` per
recipient: ``kind`` is ``bounce`` (permanent: suppress), ``soft_bounce`` (temporary: counted),
``complaint`` (spam report: suppress) or ``delivered``; ``message_id`` is the Message-ID header
the provider reports (how the event finds our message), ``external_id`` the provider's own id
of the event (a redelivered webhook is recognised by it). Notifications of other kinds (opens,
clicks, unsubscribes tracked by the provider) are ignored: our own links record those.

Mapping per provider:

- SES (``notificationType`` or ``eventType``): ``Bounce`` with ``bounceType`` ``Permanent`` ->
  bounce, ``Transient``/``Undetermined`` -> soft_bounce; ``Complaint`` -> complaint;
  ``Delivery`` -> delivered. The Message-ID comes from ``mail.headers`` /
  ``mail.commonHeaders`` (SES's own ``mail.messageId`` is not ours).
- SendGrid: ``bounce`` (``type`` ``bounce``) and ``dropped`` for a bounced or invalid address
  -> bounce; ``bounce`` with ``type`` ``blocked`` and ``deferred`` -> soft_bounce;
  ``spamreport`` -> complaint; ``delivered`` -> delivered. Message-ID: ``smtp-id``.
- Postmark (``RecordType``): ``Bounce`` with a hard ``Type`` (``HARD_POSTMARK``) -> bounce,
  other bounce types that mean delivery failed (``SOFT_POSTMARK``) -> soft_bounce;
  ``SpamComplaint`` -> complaint; ``Delivery`` -> delivered. Postmark's ``MessageID`` is its own,
  so the message is found by address and time.
- Mailgun (``event-data``): ``failed`` with ``severity`` ``permanent`` -> bounce, ``temporary``
  -> soft_bounce; ``complained`` -> complaint; ``delivered`` -> delivered. Message-ID:
  ``message.headers.message-id``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from newsletter.store.records import RowError, parse_time

HARD_POSTMARK = {"HardBounce", "BadEmailAddress", "ManuallyDeactivated", "Unconfirmed"}
SOFT_POSTMARK = {"Transient", "SoftBounce", "DnsError", "Blocked", "DMARCPolicy", "Unknown"}
SENDGRID_HARD_DROPS = ("bounced address", "invalid", "unsubscribed address")


class PayloadError(ValueError):
    """A verified payload that does not have the provider's documented shape."""


@dataclass(frozen=True)
class Feedback:
    """One recipient's bounce, complaint or delivery, as a provider or a report told it."""

    kind: str  # bounce | soft_bounce | complaint | delivered
    email: str
    occurred_at: datetime
    external_id: str
    message_id: str | None = None
    detail: str | None = None


def _time(value: Any, *, fallback: datetime) -> datetime:
    if value in (None, ""):
        return fallback
    try:
        return parse_time(value, "timestamp")
    except RowError:
        return fallback


def _header(headers: Any, name: str) -> str | None:
    """A header value from a list of {name, value} objects or a name -> value mapping."""
    if isinstance(headers, Mapping):
        for key, value in headers.items():
            if str(key).lower() == name.lower():
                return str(value)
    if isinstance(headers, list):
        for entry in headers:
            if isinstance(entry, Mapping) and str(entry.get("name", "")).lower() == name.lower():
                return str(entry.get("value"))
    return None


def _ses_kind(note: Mapping[str, Any]) -> tuple[str, str, Any] | None:
    """(kind, sub-object name, recipients) of an SES notification, or None to ignore it."""
    kind = note.get("notificationType") or note.get("eventType")
    if kind == "Bounce":
        bounce = note.get("bounce") or {}
        hard = bounce.get("bounceType") == "Permanent"
        return ("bounce" if hard else "soft_bounce"), "bounce", bounce.get("bouncedRecipients")
    if kind == "Complaint":
        return "complaint", "complaint", (note.get("complaint") or {}).get("complainedRecipients")
    if kind == "Delivery":
        return "delivered", "delivery", (note.get("delivery") or {}).get("recipients")
    return None


def parse_ses(note: Mapping[str, Any], *, sns_id: str, now: datetime) -> list[Feedback]:
    """Feedback from one SES notification (the SNS ``Message``, decoded)."""
    found = _ses_kind(note)
    if found is None:
        return []
    kind, part, recipients = found
    body = note.get(part) or {}
    mail = note.get("mail") or {}
    if not isinstance(recipients, list):
        raise PayloadError(f"SES {part} has no recipient list")
    mid = _header(mail.get("headers"), "Message-ID") or (mail.get("commonHeaders") or {}).get(
        "messageId"
    )
    when = _time(body.get("timestamp") or mail.get("timestamp"), fallback=now)
    event_id = body.get("feedbackId") or sns_id
    out = []
    for recipient in recipients:
        email = recipient.get("emailAddress") if isinstance(recipient, Mapping) else recipient
        if not email:
            continue
        detail = recipient.get("diagnosticCode") if isinstance(recipient, Mapping) else None
        ext = f"ses:{part}:{event_id}:{str(email).lower()}"
        out.append(Feedback(kind, str(email), when, ext, mid, detail))
    return out


def _sendgrid_kind(event: Mapping[str, Any]) -> str | None:
    name = event.get("event")
    if name == "bounce":
        return "soft_bounce" if event.get("type") == "blocked" else "bounce"
    if name == "dropped":
        reason = str(event.get("reason", "")).lower()
        return "bounce" if any(r in reason for r in SENDGRID_HARD_DROPS) else None
    return {"deferred": "soft_bounce", "spamreport": "complaint", "delivered": "delivered"}.get(
        str(name)
    )


def parse_sendgrid(events: Any, *, now: datetime) -> list[Feedback]:
    """Feedback from a SendGrid event webhook body (a JSON list of events)."""
    if not isinstance(events, list):
        raise PayloadError("a SendGrid event webhook body is a JSON list of events")
    out = []
    for event in events:
        if not isinstance(event, Mapping) or not event.get("email"):
            continue
        kind = _sendgrid_kind(event)
        if kind is None:
            continue
        ident = event.get("sg_event_id") or f"{event.get('sg_message_id')}:{event.get('event')}"
        detail = event.get("reason") or event.get("response")
        when = _time(event.get("timestamp"), fallback=now)
        mid = event.get("smtp-id")
        out.append(Feedback(kind, str(event["email"]), when, f"sendgrid:{ident}", mid, detail))
    return out


def parse_postmark(record: Any, *, now: datetime) -> list[Feedback]:
    """Feedback from a Postmark bounce, spam complaint or delivery webhook."""
    if not isinstance(record, Mapping):
        raise PayloadError("a Postmark webhook body is a JSON object")
    kind_name = record.get("RecordType")
    bounce_type = str(record.get("Type", ""))
    if kind_name == "Bounce" and bounce_type == "SpamComplaint":
        kind_name = "SpamComplaint"
    if kind_name == "Bounce":
        kind = "bounce" if bounce_type in HARD_POSTMARK else None
        kind = kind or ("soft_bounce" if bounce_type in SOFT_POSTMARK else None)
    else:
        kind = {"SpamComplaint": "complaint", "Delivery": "delivered"}.get(str(kind_name))
    email = record.get("Email") or record.get("Recipient")
    if kind is None or not email:
        return []
    when = _time(record.get("BouncedAt") or record.get("DeliveredAt"), fallback=now)
    ident = f"postmark:{kind_name}:{record.get('ID') or record.get('MessageID')}:{email}"
    detail = record.get("Details") or record.get("Description")
    return [Feedback(kind, str(email), when, ident.lower(), None, detail)]


def parse_mailgun(payload: Any, *, now: datetime) -> list[Feedback]:
    """Feedback from a Mailgun webhook (``{"signature": ..., "event-data": ...}``)."""
    data = payload.get("event-data") if isinstance(payload, Mapping) else None
    if not isinstance(data, Mapping):
        raise PayloadError("a Mailgun webhook body has an 'event-data' object")
    name = data.get("event")
    if name == "failed":
        kind = "bounce" if data.get("severity") == "permanent" else "soft_bounce"
    else:
        kind = {"complained": "complaint", "delivered": "delivered"}.get(str(name), "")
    email = data.get("recipient")
    if not kind or not email:
        return []
    headers = (data.get("message") or {}).get("headers") or {}
    mid = _header(headers, "message-id")
    status = data.get("delivery-status") or {}
    detail = status.get("message") or status.get("description") or data.get("reason")
    when = _time(data.get("timestamp"), fallback=now)
    ident = f"mailgun:{data.get('id') or data.get('timestamp')}:{str(email).lower()}"
    return [Feedback(kind, str(email), when, ident, mid, detail and str(detail))]
