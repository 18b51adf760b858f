"""Is the secret key strong enough to sign links with? One check for `serve` and `run`.

Whoever knows the key can forge unsubscribe, preference and click tokens, so outside the demo
the key must carry at least 32 bytes (256 bits) of entropy, and it may be neither the
shipped default nor the demo key (both are public, in this source). The entropy of a string
cannot be known, only bounded: `estimated_bits` counts ``log2(alphabet)`` bits per character
of the shortest block the key repeats, where the alphabet is what the key's character classes
allow (16 for hex digits, 64 for base64url, ...) and at most four times its distinct
characters.
``secrets.token_urlsafe(32)`` (43 characters) and ``secrets.token_hex(32)`` (64) pass.
"""

from __future__ import annotations

import math
import string

from newsletter.config import DEFAULT_SECRET_KEY, DEMO_SECRET_KEY

DEMO_SECRET = DEMO_SECRET_KEY  # the demo signs with it; `serve --demo` verifies with it
MIN_SECRET_BITS = 256
HOW_TO = (
    "set NEWSLETTER_SECRET_KEY (or secret_key in newsletter.toml) to a random value, e.g. "
    "export NEWSLETTER_SECRET_KEY=$(python -c 'import secrets; print(secrets.token_urlsafe(32))')"
)


class WeakSecretError(ValueError):
    """The secret key is missing, public or too weak; the message says how to make one."""


def _alphabet(key: str) -> int:
    """How many symbols the key's character classes allow."""
    chars = set(key)
    if chars <= set(string.digits + "abcdef") or chars <= set(string.digits + "ABCDEF"):
        return 16
    letters = set(string.ascii_letters + string.digits)
    mixed = chars & set(string.ascii_lowercase) and chars & set(string.ascii_uppercase)
    if mixed and (chars <= letters | set("-_") or chars <= letters | set("+/=")):
        return 64  # base64 or base64url
    size = 0
    for group, count in (
        (string.ascii_lowercase, 26),
        (string.ascii_uppercase, 26),
        (string.digits, 10),
        (string.punctuation + " ", 33),
    ):
        if chars & set(group):
            size += count
    if any(not c.isascii() for c in chars):
        size += 128
    return size


def _period(key: str) -> str:
    """The shortest block whose repetition gives the key ('abab' -> 'ab')."""
    for size in range(1, len(key) // 2 + 1):
        if len(key) % size == 0 and key[:size] * (len(key) // size) == key:
            return key[:size]
    return key


def estimated_bits(key: str) -> float:
    """An upper-bound style estimate of the key's entropy in bits (0 for a blank key)."""
    if not key.strip():
        return 0.0
    block = _period(key)
    symbols = min(_alphabet(key), 4 * len(set(key)))
    return len(block) * math.log2(max(symbols, 2))


def check_secret_key(key: str, *, demo: bool = False) -> None:
    """Refuse a key that must not sign real links (raises WeakSecretError, one line).

    In the demo (`demo`) any non-blank key is accepted; a blank key never is, since no link
    can be signed with it.
    """
    if not key.strip():
        raise WeakSecretError(f"the secret key is empty: {HOW_TO}")
    if demo:
        return
    if key in (DEFAULT_SECRET_KEY, DEMO_SECRET):
        which = "shipped default" if key == DEFAULT_SECRET_KEY else "demo key"
        raise WeakSecretError(
            f"the secret key is the {which}, which is public: anyone could forge tracking and "
            f"unsubscribe links; {HOW_TO} (or pass --demo to try it out)"
        )
    bits = estimated_bits(key)
    if bits < MIN_SECRET_BITS:
        raise WeakSecretError(
            f"the secret key is too weak (about {bits:.0f} bits of entropy; at least "
            f"{MIN_SECRET_BITS}, i.e. 32 random bytes, are needed): {HOW_TO}"
        )


def is_demo_key(key: str) -> bool:
    """True for the public keys that only the demo may use."""
    return key in (DEFAULT_SECRET_KEY, DEMO_SECRET)
