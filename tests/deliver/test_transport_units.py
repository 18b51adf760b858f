"""Transport URLs, the memory and outbox transports' specifics, backoff and the token bucket."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import pytest

from newsletter.deliver import (
    Backoff,
    MemoryTransport,
    OutboxTransport,
    OutgoingMessage,
    SmtpTransport,
    TokenBucket,
    TransportConfigError,
    settings_from_url,
    transport_from_url,
)

Make = Callable[..., list[OutgoingMessage]]


@pytest.mark.parametrize(
    ("url", "security", "port", "user", "password"),
    [
        ("smtp://mail.test", "none", 25, None, None),
        ("smtp://u:p%40ss@mail.test:587?starttls=1", "starttls", 587, "u", "p@ss"),
        ("smtp://mail.test:2525?starttls=required", "starttls-required", 2525, None, None),
        ("smtps://u:@mail.test", "tls", 465, "u", ""),
    ],
)
def test_smtp_urls_are_parsed(
    url: str, security: str, port: int, user: str | None, password: str | None
):
    settings, _ = settings_from_url(url)
    assert (settings.host, settings.security, settings.port) == ("mail.test", security, port)
    assert (settings.username, settings.password) == (user, password)


def test_url_options_and_keyword_overrides():
    transport = transport_from_url("smtp://h:1?connections=3&rate=20&timeout=4&verify=0")
    assert isinstance(transport, SmtpTransport)
    assert transport.connections == 3 and transport.bucket and transport.bucket.rate == 20
    assert transport.settings.timeout == 4 and transport.settings.ssl_context is not None
    override = transport_from_url("smtp://h:1?connections=3&rate=20", connections=2, rate=5)
    assert isinstance(override, SmtpTransport)
    assert override.connections == 2 and override.bucket and override.bucket.rate == 5


@pytest.mark.parametrize(
    ("url", "names"),
    [
        ("ftp://x", ["ftp://x", "smtp://", "outbox:DIR", "memory:"]),
        ("smtp://h?starttls=maybe", ["starttls=", "required"]),
        ("smtp://h?rate=fast", ["rate=", "fast"]),
        ("smtp://h?connections=many", ["connections=", "many"]),
        ("smtp://u:hunter2@h?starttls=maybe", ["u:***@h"]),
        ("smtp://:25", ["no host"]),
        ("outbox:", ["outbox needs a folder"]),
    ],
)
def test_bad_urls_get_a_clear_error_naming_the_input(url: str, names: list[str]):
    with pytest.raises(TransportConfigError) as caught:
        transport_from_url(url)
    for name in names:
        assert name in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_outbox_writes_one_file_per_delivery_attempt(tmp_path: Path, make_messages: Make):
    transport = transport_from_url(f"outbox:{tmp_path / 'out'}")
    messages = make_messages(3)
    transport.send_many(messages)
    result = transport.send(messages[1])  # a resumed run re-sends message 1
    files = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert files == [
        "run1.0@sender.test-1.eml",
        "run1.1@sender.test-1.eml",
        "run1.1@sender.test-2.eml",  # the second delivery is kept, not written over the first
        "run1.2@sender.test-1.eml",
    ]
    assert result.status == "sent" and result.detail.endswith("run1.1@sender.test-2.eml")
    for name in ("run1.1@sender.test-1.eml", "run1.1@sender.test-2.eml"):
        assert (tmp_path / "out" / name).read_bytes() == messages[1].data


def test_outbox_names_bytes_without_a_message_id_by_key(tmp_path: Path):
    transport = OutboxTransport(tmp_path)
    for _ in range(2):
        transport.send(OutgoingMessage(7, "a@x", ["b@x"], b"Subject: hi\r\n\r\nMessage-ID: <no>"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["7-1.eml", "7-2.eml"]


def test_outbox_refuses_keys_that_are_not_file_names(tmp_path: Path):
    transport = OutboxTransport(tmp_path)
    with pytest.raises(ValueError, match="not usable as a file name"):
        transport.send(OutgoingMessage("../evil", "a@x", ["b@x"], b"x"))


def test_memory_transport_plays_programmed_failures(make_messages: Make):
    transport = MemoryTransport(
        failures={
            "user0@example.test": ["transient", "transient"],
            "user1@example.test": "permanent",
        }
    )
    first, second = make_messages(2)
    statuses = [transport.send(first).status for _ in range(3)]
    bounce = transport.send(second)
    assert statuses == ["transient", "transient", "sent"]
    assert bounce.status == "permanent" and bounce.bounced and bounce.code == 550
    assert [m.key for m in transport.sent] == [0]
    assert len(transport.attempts) == 4


def test_backoff_grows_exponentially_with_full_jitter_and_a_cap():
    backoff = Backoff(base=2, factor=3, cap=50, max_attempts=4, rng=random.Random(1))
    assert [backoff.ceiling(n) for n in (1, 2, 3, 4, 5)] == [2, 6, 18, 50, 50]
    delays = [backoff.delay(n) for n in (1, 2, 3) for _ in range(200)]
    assert all(0 <= d <= 18 for d in delays)
    assert max(delays[400:]) > 6  # jitter spans the whole range
    assert [backoff.should_retry(n) for n in (1, 3, 4)] == [True, True, False]
    again = Backoff(base=2, factor=3, cap=50, max_attempts=4, rng=random.Random(1))
    assert [again.delay(1) for _ in range(200)] == delays[:200]  # deterministic for tests


def test_token_bucket_allows_a_burst_then_paces():
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    bucket = TokenBucket(100, burst=5, clock=lambda: now[0], sleep=sleep)
    for _ in range(5):
        assert bucket.acquire() == 0
    for _ in range(10):
        bucket.acquire()
    assert now[0] == pytest.approx(0.10)  # 10 messages beyond the burst at 100/s
    now[0] += 1.0  # idle: refills to the burst, not beyond
    assert [bucket.acquire() for _ in range(5)] == [0] * 5
    assert bucket.acquire() == pytest.approx(0.01)


@pytest.mark.parametrize("bad", [{"rate": 0}, {"rate": 5, "burst": 0.5}])
def test_token_bucket_rejects_nonsense(bad: dict[str, float]):
    with pytest.raises(ValueError):
        TokenBucket(**bad)


def test_the_suite_wide_check_refuses_a_message_with_a_broken_image() -> None:
    """conftest's autouse check runs on every OutgoingMessage any test builds."""
    from newsletter.deliver.transport import OutgoingMessage

    for body in (b'<img src="None">', b'<img src=3D"">'):
        with pytest.raises(AssertionError, match="broken image"):
            OutgoingMessage(1, "news@example.com", ["ann@example.com"], body)
    assert OutgoingMessage(2, "news@example.com", ["a@example.com"], b'<img src="x.png">').key == 2
