"""Service functions for ESP webhooks and bounce reports: verify, parse, link, record.

``handle_webhook(provider, body, headers, ...)`` checks the provider's signature
(``track.signatures``; nothing is parsed or stored before it passes), parses the payload
(``track.webhooks``) and records each recipient's feedback (``record``). ``record`` finds our
message by the Message-ID the report carries (``<nl.{message id}.{tag}@domain>``, the tag
checked against the secret key, so a forged id links nothing) and calls
``store.feedback.record_feedback``.

Amazon SNS needs two fetches over HTTPS, both to Amazon SNS hosts only: the signing
certificate (cached per URL) and, for a subscription confirmation, the ``SubscribeURL``. They
are injectable (``fetch``), so tests never touch the network.
"""

from __future__ import annotations

import json
import logging
import re
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from newsletter.config import Settings
from newsletter.db import Engine
from newsletter.render.render import message_id_header
from newsletter.store import feedback as store
from newsletter.track import signatures, webhooks
from newsletter.track.dsn import parse_report
from newsletter.track.signatures import SNS_HOST, SignatureError
from newsletter.track.webhooks import Feedback, PayloadError

log = logging.getLogger(__name__)
PROVIDERS = ("ses", "sendgrid", "postmark", "mailgun")
OUR_ID = re.compile(r"<?\s*(nl\.(\d{1,18})\.[0-9a-f]{12})@([^>\s]+)\s*>?", re.IGNORECASE)
Fetch = Callable[[str], bytes]


def fetch_https(url: str) -> bytes:
    """GET an https URL (10 s timeout); the callers pass only checked Amazon SNS URLs."""
    if urlsplit(url).scheme != "https":
        raise SignatureError(f"refusing to fetch {url!r}: not https")
    with urllib.request.urlopen(url, timeout=10) as response:
        data: bytes = response.read(1_000_000)
        return data


@lru_cache(maxsize=32)
def _cached_cert(url: str) -> bytes:
    return fetch_https(url)


@dataclass
class Outcome:
    """How many recipients each outcome had (suppressed, recorded, duplicate, unknown)."""

    counts: dict[str, int] = field(default_factory=dict)
    note: str | None = None

    def add(self, outcome: str) -> None:
        self.counts[outcome] = self.counts.get(outcome, 0) + 1


def message_key(header: str | None, *, settings: Settings) -> int | None:
    """Our message id in a Message-ID header, when its tag matches this install's key."""
    match = OUR_ID.search(header or "")
    if match is None:
        return None
    message_id = int(match.group(2))
    expected = message_id_header(message_id, settings=settings).strip("<>").partition("@")[0]
    return message_id if match.group(1).lower() == expected.lower() else None


def record(
    engine: Engine, items: Iterable[Feedback], *, settings: Settings, now: datetime
) -> Outcome:
    """Record each feedback item (see ``store.feedback.record_feedback``)."""
    outcome = Outcome()
    for item in items:
        outcome.add(
            store.record_feedback(
                engine,
                kind=item.kind,
                email=item.email,
                occurred_at=item.occurred_at,
                external_id=item.external_id,
                message_id=message_key(item.message_id, settings=settings),
                soft_limit=settings.soft_bounce_limit,
                now=now,
            )
        )
    return outcome


def _json(body: bytes) -> Any:
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PayloadError(f"the body is not JSON: {exc}") from exc


Parsed = tuple[list[Feedback], str | None]


def _signed_json(body: bytes, what: str) -> Mapping[str, Any]:
    """A body that must be a JSON object to be verified at all (else it is refused)."""
    try:
        value = _json(body)
    except PayloadError as exc:
        raise SignatureError(f"not a signed {what}: {exc}") from exc
    if not isinstance(value, Mapping):
        raise SignatureError(f"not a signed {what}: the body is not a JSON object")
    return value


def _ses(body: bytes, settings: Settings, now: datetime, fetch: Fetch | None) -> Parsed:
    if not settings.webhooks.ses_topic_arns:
        raise signatures.NotConfigured("SES", "ses_topic_arns")
    message = _signed_json(body, "SNS message")
    load = fetch or _cached_cert
    signatures.verify_sns(message, topics=settings.webhooks.ses_topic_arns, load_cert=load)
    if message.get("Type") == "SubscriptionConfirmation":
        url = str(message.get("SubscribeURL", ""))
        parts = urlsplit(url)
        if parts.scheme != "https" or not SNS_HOST.match(parts.hostname or ""):
            raise SignatureError(f"SubscribeURL {url!r} is not an https Amazon SNS address")
        (fetch or fetch_https)(url)
        return [], f"subscribed to {message.get('TopicArn')}"
    if message.get("Type") != "Notification":
        return [], f"ignored SNS {message.get('Type')}"
    note = _json(str(message.get("Message", "")).encode("utf-8"))
    if not isinstance(note, Mapping):
        raise PayloadError("the SNS Message is not an SES notification object")
    return webhooks.parse_ses(note, sns_id=str(message.get("MessageId")), now=now), None


def parse_verified(
    provider: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    settings: Settings,
    now: datetime,
    fetch: Fetch | None = None,
) -> Parsed:
    """Verify a provider's webhook and parse it: (feedback, a note), or Signature/PayloadError."""
    secrets = settings.webhooks
    if provider == "ses":
        return _ses(body, settings, now, fetch)
    if provider == "sendgrid":
        signatures.verify_sendgrid(
            body,
            signature=headers.get("x-twilio-email-event-webhook-signature"),
            timestamp=headers.get("x-twilio-email-event-webhook-timestamp"),
            public_key=secrets.sendgrid_public_key,
            now=now,
            max_age=secrets.max_age_seconds,
        )
        return webhooks.parse_sendgrid(_json(body), now=now), None
    if provider == "postmark":
        signatures.verify_basic_auth(
            headers.get("authorization"), expected=secrets.postmark_basic_auth
        )
        return webhooks.parse_postmark(_json(body), now=now), None
    if provider == "mailgun":
        if not secrets.mailgun_signing_key:
            raise signatures.NotConfigured("Mailgun", "mailgun_signing_key")
        payload = _signed_json(body, "Mailgun webhook")
        signed = payload.get("signature")
        if not isinstance(signed, Mapping):
            raise SignatureError("not a signed Mailgun webhook: no 'signature' object")
        key, age = secrets.mailgun_signing_key, secrets.max_age_seconds
        signatures.verify_mailgun(signed, signing_key=key, now=now, max_age=age)
        return webhooks.parse_mailgun(payload, now=now), None
    raise PayloadError(f"unknown provider {provider!r}: use one of {', '.join(PROVIDERS)}")


def handle_webhook(
    engine: Engine,
    provider: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    settings: Settings,
    now: datetime,
    fetch: Fetch | None = None,
) -> Outcome:
    """Verify, parse and record one webhook call (raises before recording anything)."""
    items, note = parse_verified(provider, body, headers, settings=settings, now=now, fetch=fetch)
    outcome = record(engine, items, settings=settings, now=now)
    outcome.note = note
    return outcome


@dataclass
class ReportImport:
    """What ``import_reports`` did: per-recipient outcomes, reports read, messages skipped."""

    outcome: Outcome
    reports: int = 0
    skipped: list[str] = field(default_factory=list)


def import_reports(
    engine: Engine, messages: Iterable[tuple[str, bytes]], *, settings: Settings, now: datetime
) -> ReportImport:
    """Record the DSN and ARF reports among ``messages`` ((name, raw bytes) pairs)."""
    result = ReportImport(Outcome())
    for name, raw in messages:
        items = parse_report(raw, now=now)
        if not items:
            result.skipped.append(name)
            continue
        result.reports += 1
        for outcome, count in record(engine, items, settings=settings, now=now).counts.items():
            result.outcome.counts[outcome] = result.outcome.counts.get(outcome, 0) + count
    return result
