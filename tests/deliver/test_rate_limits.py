"""Rate limits with known schedules: a connection's own limit, and a global bucket in a
real Redis shared by several "workers" (clock and sleep injected: nothing is timed)."""

from __future__ import annotations

import socket
import uuid

import pytest

from newsletter.deliver.ratelimit import RedisTokenBucket, chain
from newsletter.deliver.retry import TokenBucket
from newsletter.deliver.smtp import SmtpTransport
from newsletter.deliver.transport import settings_from_url, transport_from_url
from testsupport import IN_CI

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def redis_url() -> str:
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=2).close()
    except OSError:
        if IN_CI:
            pytest.fail("Redis is required under CI (127.0.0.1:6379, see .ci/run)")
        pytest.skip("Redis is not reachable at 127.0.0.1:6379")
    return REDIS_URL


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 6))


def _bucket(url: str, key: str, time: FakeTime, rate: float, burst: float) -> RedisTokenBucket:
    return RedisTokenBucket(
        url, rate=rate, burst=burst, key=key, clock=time.clock, sleep=time.sleep
    )


def test_global_bucket_is_shared_by_every_worker(redis_url: str) -> None:
    key = f"nl-test-rate-{uuid.uuid4().hex}"
    time = FakeTime()
    a, b = (_bucket(redis_url, key, time, rate=10, burst=2) for _ in range(2))
    # Two workers asking at the same instant book one schedule: 2 free, then 0.1 s apart.
    waits = [w.acquire() for w in (a, b, a, b, a)]
    assert [round(w, 6) for w in waits] == [0.0, 0.0, 0.1, 0.2, 0.3]
    assert time.slept == [0.1, 0.2, 0.3]
    time.now += 10  # idle long enough: the bucket refills to its burst, not beyond
    assert [round(w.acquire(), 6) for w in (b, a, b)] == [0.0, 0.0, 0.1]


def test_global_bucket_keys_are_independent_and_rate_must_be_positive(redis_url: str) -> None:
    time = FakeTime()
    one = _bucket(redis_url, f"nl-test-rate-{uuid.uuid4().hex}", time, rate=1, burst=1)
    two = _bucket(redis_url, f"nl-test-rate-{uuid.uuid4().hex}", time, rate=1, burst=1)
    assert (one.acquire(), two.acquire()) == (0.0, 0.0)
    assert round(one.acquire(), 6) == 1.0
    with pytest.raises(ValueError, match="global_rate_limit must be > 0"):
        RedisTokenBucket(redis_url, rate=0)


def test_each_connection_has_its_own_limit_and_shares_the_global_one() -> None:
    settings, _ = settings_from_url("smtp://127.0.0.1:2525")
    shared = FakeTime()
    transport = SmtpTransport(
        settings,
        connections=2,
        connection_rate=5,
        bucket=TokenBucket(100, burst=100, clock=shared.clock, sleep=shared.sleep),
    )
    own = [b for b in transport._own if b is not None]
    assert len(own) == 2 and own[0] is not own[1] and all(b.rate == 5 for b in own)
    clocks = [FakeTime(), FakeTime()]
    for bucket, fake in zip(own, clocks, strict=True):
        bucket._clock, bucket._sleep, bucket._last = fake.clock, fake.sleep, fake.now
    message = object()
    for _ in range(3):
        transport._paced(message, 0)  # type: ignore[arg-type]
    transport._paced(message, 1)  # type: ignore[arg-type]
    # Connection 0 waited for its own tokens (1 free, then 0.2 s apart); connection 1 did not.
    assert clocks[0].slept == [0.2, 0.4] and clocks[1].slept == []
    assert shared.slept == []  # the shared bucket had room for all four
    transport.close()


def test_connection_rate_is_read_from_the_url() -> None:
    transport = transport_from_url("smtp://127.0.0.1:2525?connections=3&connection_rate=7")
    assert isinstance(transport, SmtpTransport)
    assert [b.rate for b in transport._own if b is not None] == [7.0, 7.0, 7.0]
    transport.close()
    assert chain(None, None) is None
