"""Tracking tokens: round trips, binding of every field, tamper and misuse detection."""

from __future__ import annotations

import base64
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from newsletter import tokens
from newsletter.tokens import Purpose, TokenError

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


def _spellings(token: str) -> list[str]:
    """Other base64 spellings of the same bytes: padding, the standard alphabet, trailing bits."""
    others = [token + "=" * n for n in (1, 2, 3)]
    others += [token.replace("-", "+"), token.replace("_", "/")]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    if len(token) % 4:  # the last character carries unused bits: set one of them
        last = alphabet.index(token[-1])
        others += [token[:-1] + alphabet[last | bit] for bit in (1, 2, 4, 8) if last | bit != last]
    return [o for o in others if o != token]


@given(
    message_id=st.integers(min_value=0, max_value=2**40),
    slot=st.none() | st.integers(min_value=0, max_value=300),
    url=st.text(min_size=0, max_size=40).map(lambda s: f"https://example.com/{s}"),
)
def test_only_the_canonical_spelling_of_a_token_verifies(
    message_id: int, slot: int | None, url: str
) -> None:
    token = tokens.sign_click(secret_key=KEY, message_id=message_id, slot=slot, url=url)
    assert tokens.verify_click(token, secret_key=KEY).message_id == message_id
    for other in _spellings(token):
        if base64.urlsafe_b64decode(token + "==") == _decode_loose(other):
            with pytest.raises(TokenError):
                tokens.verify_click(other, secret_key=KEY)


def _decode_loose(text: str) -> bytes | None:
    try:
        return base64.b64decode(text.replace("-", "+").replace("_", "/") + "==")
    except ValueError:
        return None


def test_every_variant_of_one_token_is_refused() -> None:
    token = tokens.sign_unsubscribe(secret_key=KEY, message_id=7)
    variants = [*_spellings(token), token + "\n", " " + token, token[:5] + "\n" + token[5:]]
    accepted = []
    for variant in variants:
        try:
            tokens.verify_unsubscribe(variant, secret_key=KEY)
            accepted.append(variant)
        except TokenError:
            pass
    assert accepted == [] and variants


def test_form_values_bind_the_token_and_expire() -> None:
    token = tokens.sign_preferences(secret_key=KEY, message_id=3)
    value = tokens.sign_form(secret_key=KEY, token=token, issued_at=1_000)
    tokens.verify_form(value, secret_key=KEY, token=token, now=1_500)
    other = tokens.sign_preferences(secret_key=KEY, message_id=4)
    for bad, kwargs in [
        (value, {"token": other, "now": 1_500}),  # another subscriber's page
        (value, {"token": token, "now": 1_000 + tokens.FORM_MAX_AGE_SECONDS + 1}),  # expired
        ("1000." + value.split(".")[1][::-1], {"token": token, "now": 1_500}),  # tampered
        ("", {"token": token, "now": 1_500}),
        (None, {"token": token, "now": 1_500}),
    ]:
        with pytest.raises(TokenError):
            tokens.verify_form(bad, secret_key=KEY, **kwargs)  # type: ignore[arg-type]
