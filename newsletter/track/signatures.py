"""Check that an ESP webhook is genuine, per provider, before anything is parsed or stored.

- Amazon SES (through SNS): the SNS message signature, RSA over the documented string to sign
  (``Message``, ``MessageId``, ``Subject`` if present, ``SubscribeURL``, ``Timestamp``,
  ``Token``, ``TopicArn``, ``Type``, each as ``name\\nvalue\\n``, in that order, keeping those
  the message type has), SHA1 for ``SignatureVersion`` 1 and SHA256 for 2, with the certificate
  at ``SigningCertURL``, which must be an https URL on an ``sns.<region>.amazonaws.com`` host;
  the topic must be one of ``webhooks.ses_topic_arns``.
- SendGrid (signed event webhook): ECDSA P-256/SHA256 over ``timestamp + raw body``, the
  signature and timestamp in ``X-Twilio-Email-Event-Webhook-Signature`` / ``-Timestamp``, the
  verification key (base64 DER) in ``webhooks.sendgrid_public_key``.
- Mailgun: HMAC-SHA256 with ``webhooks.mailgun_signing_key`` over ``timestamp + token``, hex,
  from the payload's ``signature`` object.
- Postmark: HTTP basic auth with ``webhooks.postmark_basic_auth`` (``user:password``).

SendGrid and Mailgun timestamps further than ``webhooks.max_age_seconds`` from now are refused
(replays). Every check raises ``SignatureError``; comparisons are constant-time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

SNS_HOST = re.compile(r"^sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$")
SNS_FIELDS = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": (
        "Message",
        "MessageId",
        "SubscribeURL",
        "Timestamp",
        "Token",
        "TopicArn",
        "Type",
    ),
}
SNS_FIELDS["UnsubscribeConfirmation"] = SNS_FIELDS["SubscriptionConfirmation"]
CertLoader = Callable[[str], bytes]


class SignatureError(ValueError):
    """The webhook is not genuine (or not configured); the message says which check failed."""


class NotConfigured(SignatureError):
    """The provider's secret is not set, so none of its webhooks can be trusted."""

    def __init__(self, provider: str, setting: str) -> None:
        super().__init__(f"{provider} webhooks are not configured: set webhooks.{setting}")


def sns_string_to_sign(message: Mapping[str, Any]) -> bytes:
    """The bytes SNS signs for ``message`` (see the module docstring)."""
    names = SNS_FIELDS.get(str(message.get("Type")))
    if names is None:
        raise SignatureError(f"unknown SNS message type {message.get('Type')!r}")
    lines = []
    for name in names:
        if name in message and message[name] is not None:
            lines.append(f"{name}\n{message[name]}\n")
        elif name != "Subject":
            raise SignatureError(f"SNS message lacks {name}")
    return "".join(lines).encode("utf-8")


def check_sns_cert_url(url: str) -> str:
    """The URL itself when it is an https URL on an SNS host, else SignatureError."""
    parts = urlsplit(url)
    if parts.scheme != "https" or not SNS_HOST.match(parts.hostname or ""):
        raise SignatureError(f"SigningCertURL {url!r} is not an https Amazon SNS address")
    if not parts.path.endswith(".pem"):
        raise SignatureError(f"SigningCertURL {url!r} does not name a .pem certificate")
    return url


def verify_sns(message: Mapping[str, Any], *, topics: list[str], load_cert: CertLoader) -> None:
    """Check an SNS message's topic and signature, or raise SignatureError."""
    if not topics:
        raise NotConfigured("SES", "ses_topic_arns")
    if message.get("TopicArn") not in topics:
        raise SignatureError(f"topic {message.get('TopicArn')!r} is not in webhooks.ses_topic_arns")
    version = str(message.get("SignatureVersion"))
    if version not in ("1", "2"):
        raise SignatureError(f"unknown SNS SignatureVersion {version!r}")
    digest: hashes.HashAlgorithm = hashes.SHA1() if version == "1" else hashes.SHA256()
    try:
        signature = base64.b64decode(str(message.get("Signature", "")), validate=True)
        pem = load_cert(check_sns_cert_url(str(message.get("SigningCertURL", ""))))
        key = x509.load_pem_x509_certificate(pem).public_key()
    except (binascii.Error, ValueError) as exc:
        raise SignatureError(f"SNS signature or certificate unreadable: {exc}") from exc
    if not isinstance(key, rsa.RSAPublicKey):
        raise SignatureError("the SNS certificate does not hold an RSA key")
    try:
        key.verify(signature, sns_string_to_sign(message), padding.PKCS1v15(), digest)
    except InvalidSignature as exc:
        raise SignatureError("SNS signature does not match") from exc


def _fresh(timestamp: str, *, now: datetime, max_age: int) -> None:
    try:
        sent = datetime.fromtimestamp(float(timestamp), UTC)
    except (TypeError, ValueError, OverflowError, OSError) as exc:
        raise SignatureError(f"webhook timestamp {timestamp!r} is not Unix seconds") from exc
    if abs((now - sent).total_seconds()) > max_age:
        raise SignatureError(f"webhook timestamp {timestamp} is more than {max_age} s from now")


def verify_sendgrid(
    body: bytes,
    *,
    signature: str | None,
    timestamp: str | None,
    public_key: str,
    now: datetime,
    max_age: int,
) -> None:
    """Check SendGrid's ECDSA signature over ``timestamp + body``, or raise SignatureError."""
    if not public_key:
        raise NotConfigured("SendGrid", "sendgrid_public_key")
    if not signature or not timestamp:
        raise SignatureError("the SendGrid signature or timestamp header is missing")
    _fresh(timestamp, now=now, max_age=max_age)
    try:
        key = serialization.load_der_public_key(base64.b64decode(public_key))
        raw = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SignatureError(f"SendGrid key or signature unreadable: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise SignatureError("webhooks.sendgrid_public_key is not an elliptic-curve key")
    try:
        key.verify(raw, timestamp.encode("utf-8") + body, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature as exc:
        raise SignatureError("SendGrid signature does not match") from exc


def verify_mailgun(
    signed: Mapping[str, Any], *, signing_key: str, now: datetime, max_age: int
) -> None:
    """Check a Mailgun payload's ``signature`` object, or raise SignatureError."""
    if not signing_key:
        raise NotConfigured("Mailgun", "mailgun_signing_key")
    timestamp, token = str(signed.get("timestamp", "")), str(signed.get("token", ""))
    _fresh(timestamp, now=now, max_age=max_age)
    expected = hmac.new(signing_key.encode(), (timestamp + token).encode(), hashlib.sha256)
    if not hmac.compare_digest(expected.hexdigest(), str(signed.get("signature", ""))):
        raise SignatureError("Mailgun signature does not match")


def verify_basic_auth(header: str | None, *, expected: str) -> None:
    """Check an ``Authorization: Basic`` header against ``user:password``, or SignatureError."""
    if not expected:
        raise NotConfigured("Postmark", "postmark_basic_auth")
    scheme, _, value = (header or "").partition(" ")
    try:
        given = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        given = b""
    if scheme.lower() != "basic" or not hmac.compare_digest(given, expected.encode("utf-8")):
        raise SignatureError("the webhook's basic-auth credentials do not match")
