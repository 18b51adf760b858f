"""Tracking tokens: round trips, binding of every field, tamper and misuse detection."""

from __future__ import annotations

import base64
import hmac

import pytest

from newsletter.track import tokens
from newsletter.track.tokens import Purpose, TokenError

KEY = "test-secret-key-0123456789"
URL = "https://example.com/articles/é?utm_source=newsletter&x=1#frag"


def test_click_token_round_trips_every_field() -> None:
    token = tokens.sign_click(secret_key=KEY, message_id=123456, slot=3, url=URL)
    payload = tokens.verify_click(token, secret_key=KEY)
    assert payload == tokens.TokenPayload(Purpose.CLICK, 123456, 3, URL)


def test_string_message_ids_and_missing_slot_round_trip() -> None:
    token = tokens.sign_click(secret_key=KEY, message_id="run-7/ab", slot=None, url=URL)
    payload = tokens.verify_click(token, secret_key=KEY)
    assert (payload.message_id, payload.slot, payload.url) == ("run-7/ab", None, URL)


@pytest.mark.parametrize(
    ("sign", "verify", "purpose"),
    [
        (tokens.sign_open, tokens.verify_open, Purpose.OPEN),
        (tokens.sign_unsubscribe, tokens.verify_unsubscribe, Purpose.UNSUBSCRIBE),
        (tokens.sign_preferences, tokens.verify_preferences, Purpose.PREFERENCES),
        (tokens.sign_view, tokens.verify_view, Purpose.VIEW),
    ],
)
def test_message_tokens_round_trip_and_are_bound_to_their_purpose(sign, verify, purpose) -> None:
    token = sign(secret_key=KEY, message_id=42)
    assert verify(token, secret_key=KEY) == tokens.TokenPayload(purpose, 42)
    with pytest.raises(TokenError, match="not click"):
        tokens.verify_click(token, secret_key=KEY)


def test_tokens_are_url_safe_and_short() -> None:
    token = tokens.sign_unsubscribe(secret_key=KEY, message_id=10**9)
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert len(token) <= 32  # 1 + 1 + 6 bytes payload + 16 bytes MAC, base64url
    click = tokens.sign_click(secret_key=KEY, message_id=1, slot=0, url="https://e.com/a")
    assert len(click) <= 4 + (3 + len("https://e.com/a") + 16) * 4 // 3


def test_mac_is_a_128_bit_truncated_hmac_sha256() -> None:
    token = tokens.sign_open(secret_key=KEY, message_id=5)
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    body, mac = raw[:-16], raw[-16:]
    assert mac == hmac.digest(KEY.encode(), tokens.VERSION + body, "sha256")[:16]


def test_every_flipped_character_is_rejected() -> None:
    token = tokens.sign_click(secret_key=KEY, message_id=9, slot=1, url="https://e.com/x")
    for index in range(len(token)):
        replacement = "A" if token[index] != "A" else "B"
        forged = token[:index] + replacement + token[index + 1 :]
        with pytest.raises(TokenError):
            tokens.verify_click(forged, secret_key=KEY)


def test_destination_cannot_be_swapped_without_the_key() -> None:
    good = tokens.sign_click(secret_key=KEY, message_id=9, slot=1, url="https://e.com/x")
    raw = base64.urlsafe_b64decode(good + "=" * (-len(good) % 4))
    evil = raw.replace(b"https://e.com/x", b"https://evil.example/")
    forged = base64.urlsafe_b64encode(evil).rstrip(b"=").decode()
    with pytest.raises(TokenError, match="signature"):
        tokens.verify_click(forged, secret_key=KEY)


def test_other_key_garbage_and_empty_tokens_raise_token_error() -> None:
    token = tokens.sign_open(secret_key=KEY, message_id=5)
    for bad in ("", "not a token!", "AAAA", "x" * 9000, token[:-3]):
        with pytest.raises(TokenError):
            tokens.verify_open(bad, secret_key=KEY)
    with pytest.raises(TokenError, match="signature"):
        tokens.verify_open(token, secret_key="another-key")
    with pytest.raises(TokenError, match="secret key"):
        tokens.sign_open(secret_key="", message_id=1)


def test_negative_slots_are_refused() -> None:
    with pytest.raises(TokenError, match="slot"):
        tokens.sign_click(secret_key=KEY, message_id=1, slot=-1, url="https://e.com")
