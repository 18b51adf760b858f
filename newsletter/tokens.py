"""Signed, URL-safe tracking tokens that bind a message, a slot, a destination and a purpose.

A token is ``base64url(payload || mac)`` without padding (exactly that spelling: ``+``, ``/``,
``=`` and non-zero trailing bits are refused, so one set of bytes has one token), where ``mac``
is the first 16 bytes (128 bits) of HMAC-SHA256 over ``version || payload`` with the project
secret key. The payload is compact binary, not JSON, so a click token is roughly the
destination URL plus ~30 characters:

    payload = purpose (1 byte) | slot + 1 (varint, 0 = no slot) | message id | url (rest)
    message id = 0x00 + varint (integer ids) or 0x01 + varint length + UTF-8 (string ids)

Public API (the web endpoints and the renderer call these; the secret is always a keyword):

    sign_click(*, secret_key, message_id, slot, url) -> str          # /t/c/{token}
    sign_open(*, secret_key, message_id) -> str                       # /t/o/{token}.gif
    sign_unsubscribe / sign_preferences / sign_view / sign_honeypot(*, secret_key, message_id)
    verify_click(token, *, secret_key) -> TokenPayload               # .url is the redirect target
    verify_open / verify_unsubscribe / verify_preferences / verify_view(token, *, secret_key)
    verify_token(token, *, secret_key, purpose=None) -> TokenPayload
    TokenError                                                        # tamper, garbage, wrong use

Tokens do not expire: a link in a years-old email must still redirect and unsubscribe.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from dataclasses import dataclass
from enum import IntEnum
from functools import lru_cache
from typing import Any

VERSION = b"\x01"
_CANONICAL_CHARS = re.compile(r"[A-Za-z0-9_-]+")
MAC_BYTES = 16
MAX_TOKEN_CHARS = 8192


class TokenError(ValueError):
    """A token is malformed, tampered with, signed with another key or used for another purpose."""


class Purpose(IntEnum):
    """What a token may be used for; a token for one purpose never verifies as another."""

    CLICK = 1
    OPEN = 2
    UNSUBSCRIBE = 3
    PREFERENCES = 4
    VIEW = 5
    HONEYPOT = 6


@dataclass(frozen=True, slots=True)
class TokenPayload:
    """The facts a verified token vouches for."""

    purpose: Purpose
    message_id: int | str
    slot: int | None = None
    url: str | None = None


@lru_cache(maxsize=8)
def _keyed(secret_key: str | bytes) -> tuple[Any, Any]:
    """Inner and outer SHA-256 states of HMAC (RFC 2104) for a key, to copy per token."""
    if not secret_key:
        raise TokenError("no secret key configured: set NEWSLETTER_SECRET_KEY")
    key = secret_key.encode("utf-8") if isinstance(secret_key, str) else secret_key
    if len(key) > 64:
        key = hashlib.sha256(key).digest()
    key = key.ljust(64, b"\x00")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in key) + VERSION)
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))
    return inner, outer


def _mac(secret_key: str | bytes, body: bytes) -> bytes:
    """Truncated HMAC-SHA256(key, VERSION || body), identical to ``hmac.digest``."""
    inner, outer = _keyed(secret_key)
    inner = inner.copy()
    inner.update(body)
    outer = outer.copy()
    outer.update(inner.digest())
    return outer.digest()[:MAC_BYTES]


def _varint(value: int) -> bytes:
    if value < 0:
        raise TokenError(f"cannot encode negative number {value} in a token")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while pos < len(data) and shift < 64:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
    raise TokenError("token payload is truncated")


@lru_cache(maxsize=256)
def _message_bytes(message_id: int | str) -> bytes:
    """The encoded message id (cached: a message signs a dozen tokens in a row)."""
    if isinstance(message_id, int) and not isinstance(message_id, bool):
        return b"\x00" + _varint(message_id)
    raw = str(message_id).encode("utf-8")
    return b"\x01" + _varint(len(raw)) + raw


def _encode(purpose: Purpose, message_id: int | str, slot: int | None, url: str | None) -> bytes:
    if slot is not None and slot < 0:
        raise TokenError(f"slot position must be >= 0, got {slot}")
    slot_code = 0 if slot is None else slot + 1
    head = (
        bytes((purpose, slot_code)) if slot_code < 0x80 else bytes((purpose,)) + _varint(slot_code)
    )
    tail = b"" if url is None else url.encode("utf-8")
    return head + _message_bytes(message_id) + tail


def _encode_payload(payload: TokenPayload) -> bytes:
    return _encode(payload.purpose, payload.message_id, payload.slot, payload.url)


def _decode_payload(data: bytes) -> TokenPayload:
    try:
        purpose = Purpose(data[0])
    except (IndexError, ValueError) as exc:
        raise TokenError("token has an unknown purpose") from exc
    slot_plus_one, pos = _read_varint(data, 1)
    if pos >= len(data):
        raise TokenError("token payload is truncated")
    kind = data[pos]
    if kind == 0:
        message_id: int | str
        message_id, pos = _read_varint(data, pos + 1)
    elif kind == 1:
        length, pos = _read_varint(data, pos + 1)
        message_id, pos = data[pos : pos + length].decode("utf-8"), pos + length
    else:
        raise TokenError("token has an unknown message id encoding")
    url = data[pos:].decode("utf-8") if purpose is Purpose.CLICK else None
    slot = None if slot_plus_one == 0 else slot_plus_one - 1
    return TokenPayload(purpose=purpose, message_id=message_id, slot=slot, url=url)


def _sign(body: bytes, secret_key: str | bytes) -> str:
    return base64.urlsafe_b64encode(body + _mac(secret_key, body)).rstrip(b"=").decode("ascii")


def sign_payload(payload: TokenPayload, *, secret_key: str | bytes) -> str:
    """Serialize and sign a payload into a URL-safe token (no padding, no '/' or '+')."""
    return _sign(_encode_payload(payload), secret_key)


def verify_token(
    token: str, *, secret_key: str | bytes, purpose: Purpose | None = None
) -> TokenPayload:
    """Check a token's signature (constant time) and return its payload, or raise TokenError."""
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_CHARS:
        raise TokenError("token is empty or too long")
    if not _CANONICAL_CHARS.fullmatch(token):
        raise TokenError("token is not unpadded base64url")
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError) as exc:
        raise TokenError("token is not valid base64url") from exc
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") != token:
        raise TokenError("token is not in its one canonical spelling")
    if len(raw) <= MAC_BYTES:
        raise TokenError("token is too short")
    body, mac = raw[:-MAC_BYTES], raw[-MAC_BYTES:]
    expected = _mac(secret_key, body)
    if not hmac.compare_digest(mac, expected):
        raise TokenError("token signature does not match (tampered or signed with another key)")
    try:
        payload = _decode_payload(body)
    except UnicodeDecodeError as exc:
        raise TokenError("token payload is not valid UTF-8") from exc
    if purpose is not None and payload.purpose is not purpose:
        raise TokenError(f"token is for {payload.purpose.name.lower()}, not {purpose.name.lower()}")
    return payload


def sign_click(
    *, secret_key: str | bytes, message_id: int | str, slot: int | None, url: str
) -> str:
    """Token for a click link: redirects only to ``url``, attributes the click to the slot."""
    return _sign(_encode(Purpose.CLICK, message_id, slot, url), secret_key)


def sign_open(*, secret_key: str | bytes, message_id: int | str) -> str:
    """Token for the open pixel of a message."""
    return sign_payload(TokenPayload(Purpose.OPEN, message_id), secret_key=secret_key)


def sign_unsubscribe(*, secret_key: str | bytes, message_id: int | str) -> str:
    """Token for the unsubscribe page and the RFC 8058 one-click POST."""
    return sign_payload(TokenPayload(Purpose.UNSUBSCRIBE, message_id), secret_key=secret_key)


def sign_preferences(*, secret_key: str | bytes, message_id: int | str) -> str:
    """Token for the preferences page of the message's subscriber."""
    return sign_payload(TokenPayload(Purpose.PREFERENCES, message_id), secret_key=secret_key)


def sign_view(*, secret_key: str | bytes, message_id: int | str) -> str:
    """Token for the view-in-browser page of a message."""
    return sign_payload(TokenPayload(Purpose.VIEW, message_id), secret_key=secret_key)


def sign_honeypot(*, secret_key: str | bytes, message_id: int | str) -> str:
    """Token for the hidden honeypot link of a message (only machines follow it)."""
    return sign_payload(TokenPayload(Purpose.HONEYPOT, message_id), secret_key=secret_key)


def verify_honeypot(token: str, *, secret_key: str | bytes) -> TokenPayload:
    """Verify a honeypot-link token."""
    return verify_token(token, secret_key=secret_key, purpose=Purpose.HONEYPOT)


def verify_click(token: str, *, secret_key: str | bytes) -> TokenPayload:
    """Verify a click token; ``.url`` is the only place the redirect may go."""
    return verify_token(token, secret_key=secret_key, purpose=Purpose.CLICK)


def verify_open(token: str, *, secret_key: str | bytes) -> TokenPayload:
    """Verify an open-pixel token (the endpoint strips the ``.gif`` suffix first)."""
    return verify_token(token, secret_key=secret_key, purpose=Purpose.OPEN)


def verify_unsubscribe(token: str, *, secret_key: str | bytes) -> TokenPayload:
    """Verify an unsubscribe token."""
    return verify_token(token, secret_key=secret_key, purpose=Purpose.UNSUBSCRIBE)


def verify_preferences(token: str, *, secret_key: str | bytes) -> TokenPayload:
    """Verify a preferences token."""
    return verify_token(token, secret_key=secret_key, purpose=Purpose.PREFERENCES)


def verify_view(token: str, *, secret_key: str | bytes) -> TokenPayload:
    """Verify a view-in-browser token."""
    return verify_token(token, secret_key=secret_key, purpose=Purpose.VIEW)


FORM_MAX_AGE_SECONDS = 24 * 3600


def _form_mac(secret_key: str | bytes, token: str, issued_at: int) -> str:
    body = b"form\x00" + token.encode("utf-8") + b"\x00" + str(issued_at).encode("ascii")
    return base64.urlsafe_b64encode(_mac(secret_key, body)).rstrip(b"=").decode("ascii")


def sign_form(*, secret_key: str | bytes, token: str, issued_at: int) -> str:
    """The anti-forgery value of a form served for `token` at `issued_at` (Unix seconds).

    The bytes signed start with ``form``, which no token payload does (purposes are 1-5).
    """
    return f"{issued_at}.{_form_mac(secret_key, token, issued_at)}"


def verify_form(
    value: str | None,
    *,
    secret_key: str | bytes,
    token: str,
    now: int,
    max_age: int = FORM_MAX_AGE_SECONDS,
) -> None:
    """Check a form's anti-forgery value: signed for this token, issued within `max_age`."""
    stamp, _, mac = (value or "").partition(".")
    if not stamp.isdigit() or len(stamp) > 12:
        raise TokenError("the form has no valid anti-forgery value")
    expected = _form_mac(secret_key, token, int(stamp))
    if not hmac.compare_digest(mac.encode("ascii", "replace"), expected.encode("ascii")):
        raise TokenError("the form's anti-forgery value does not match")
    if not 0 <= now - int(stamp) <= max_age:
        raise TokenError("the form has expired")


def token_digest(token: str) -> str:
    """A short stable fingerprint of a token, for logs (never log the token itself)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()[:12]
