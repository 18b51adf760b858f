"""Sign webhook payloads the way each provider does, with keys made in the test.

The payload files in ``fixtures/webhooks`` follow the shapes in the providers' documentation
(Amazon SES notification examples, SendGrid event webhook reference, Postmark bounce /
spam-complaint webhooks, Mailgun webhook payloads), checked against those documents, with the
address and Message-ID replaced by the test world's.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

from newsletter.track.signatures import sns_string_to_sign

FIXTURES = Path(__file__).parent / "fixtures" / "webhooks"
TOPIC = "arn:aws:sns:us-east-1:123456789012:ses-feedback"
CERT_URL = "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-test.pem"
MAILGUN_KEY = "key-mailgun-test-signing"
POSTMARK_AUTH = "postmark:hook-secret"


def fixture(name: str, **values: str) -> str:
    """A fixture file with __NAME__ placeholders filled in."""
    text = (FIXTURES / name).read_text()
    for key, value in values.items():
        text = text.replace(f"__{key.upper()}__", value)
    return text


class SnsSigner:
    """An RSA key and self-signed certificate standing in for Amazon SNS's."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
        now = datetime.now(UTC)
        self.cert_pem = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=30))
            .sign(self.key, hashes.SHA256())
            .public_bytes(serialization.Encoding.PEM)
        )
        self.fetched: list[str] = []

    def fetch(self, url: str) -> bytes:
        """The app's SNS fetcher: the certificate, or a confirmation answer."""
        self.fetched.append(url)
        return self.cert_pem if url == CERT_URL else b"<ConfirmSubscriptionResponse/>"

    def envelope(self, message: str, *, kind: str = "Notification", version: str = "1") -> dict:
        """A signed SNS message carrying ``message``."""
        body: dict[str, Any] = {
            "Type": kind,
            "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
            "TopicArn": TOPIC,
            "Message": message,
            "Timestamp": "2026-11-02T09:05:40.655Z",
            "SignatureVersion": version,
            "SigningCertURL": CERT_URL,
        }
        if kind == "Notification":
            body["UnsubscribeURL"] = "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe"
        else:
            body["Token"] = "2336412f37fb687f5d51e6e241d7700ae02f7124"
            body["SubscribeURL"] = (
                "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&Token=2336"
            )
        digest = hashes.SHA1() if version == "1" else hashes.SHA256()
        signature = self.key.sign(sns_string_to_sign(body), padding.PKCS1v15(), digest)
        body["Signature"] = base64.b64encode(signature).decode()
        return body


class SendGridSigner:
    """A P-256 key pair like SendGrid's signed event webhook."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        der = self.key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.public_key = base64.b64encode(der).decode()

    def headers(self, body: bytes, timestamp: str) -> dict[str, str]:
        signature = self.key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        return {
            "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
            "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
            "Content-Type": "application/json",
        }


def mailgun_body(name: str, *, timestamp: str, **values: str) -> bytes:
    """A Mailgun fixture signed with MAILGUN_KEY."""
    payload = json.loads(fixture(name, timestamp=timestamp, signature="x", **values))
    token = payload["signature"]["token"]
    mac = hmac.new(MAILGUN_KEY.encode(), (timestamp + token).encode(), hashlib.sha256)
    payload["signature"]["signature"] = mac.hexdigest()
    return json.dumps(payload).encode()


def basic(auth: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(auth.encode()).decode()}
