"""Rate limits that hold across processes and machines: a token bucket kept in Redis.

A provider's limit ("at most 200 messages a second") concerns the sending account, not one
process: with N workers, each with its own local :class:`~newsletter.deliver.retry.TokenBucket`,
the account would see N times the rate. :class:`RedisTokenBucket` books every token in one
Redis hash with an atomic Lua script, so every worker that shares its ``key`` shares the
limit. Like the local bucket it *books* a token and returns how long to wait for it, then
sleeps outside Redis: waiting workers queue in booking order and the rate holds exactly.

:class:`Buckets` chains several buckets (a connection's own limit, the transport's, the
global one): a message goes when every one of them has given it a token.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from newsletter.deliver.retry import Sleep

# KEYS[1]: the bucket; ARGV: rate, burst, now (or "" for the Redis server's clock), ttl ms.
# Returns the seconds to wait for the booked token, as a string (Lua numbers become integers).
_BOOK = """
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local now = tonumber(ARGV[3])
if now == nil then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local tokens = tonumber(redis.call('HGET', KEYS[1], 'tokens'))
local last = tonumber(redis.call('HGET', KEYS[1], 'last'))
if tokens == nil or last == nil then
  tokens, last = burst, now
end
if now > last then
  tokens = math.min(burst, tokens + (now - last) * rate)
  last = now
end
tokens = tokens - 1
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'last', tostring(last))
redis.call('PEXPIRE', KEYS[1], ARGV[4])
if tokens < 0 then
  return tostring(-tokens / rate)
end
return '0'
"""


class Bucket(Protocol):
    """Blocks in ``acquire()`` until one message may go; returns the seconds it waited."""

    def acquire(self) -> float: ...


class RedisTokenBucket:
    """A token bucket shared by every process that uses the same Redis and ``key``.

    ``rate`` tokens per second refill up to ``burst`` (default: a tenth of a second's worth,
    at least 1). ``clock`` None uses the Redis server's clock (one clock for every machine);
    tests pass a clock and a ``sleep`` to check the schedule without waiting.
    """

    def __init__(
        self,
        url: str,
        *,
        rate: float,
        key: str = "newsletter:rate:global",
        burst: float | None = None,
        clock: Callable[[], float] | None = None,
        sleep: Sleep = time.sleep,
        client: Any = None,
    ) -> None:
        if rate <= 0:
            raise ValueError(f"global_rate_limit must be > 0 messages per second, got {rate}")
        import redis

        self.rate = float(rate)
        self.burst = float(burst) if burst is not None else max(1.0, self.rate / 10.0)
        self.key = key
        self._client = client or redis.Redis.from_url(url)
        self._script = self._client.register_script(_BOOK)
        self._clock, self._sleep = clock, sleep
        # Idle buckets expire: a minute past the time it takes to refill completely.
        self._ttl_ms = int(1000 * (60 + self.burst / self.rate))

    def acquire(self) -> float:
        """Book one token in Redis and sleep until it is due; return the time slept."""
        now = "" if self._clock is None else repr(self._clock())
        args: list[str | int] = [repr(self.rate), repr(self.burst), now, self._ttl_ms]
        wait = float(self._script(keys=[self.key], args=args))
        if wait > 0:
            self._sleep(wait)
        return wait


class Buckets:
    """Several buckets in a row: one token from each before a message goes."""

    def __init__(self, buckets: Sequence[Bucket]) -> None:
        self.buckets = list(buckets)

    def acquire(self) -> float:
        return sum(bucket.acquire() for bucket in self.buckets)


def chain(*buckets: Bucket | None) -> Bucket | None:
    """The given buckets as one (None when there are none)."""
    present = [b for b in buckets if b is not None]
    if not present:
        return None
    return present[0] if len(present) == 1 else Buckets(present)


def global_bucket(settings: Any) -> Bucket | None:
    """The limit every worker shares (``global_rate_limit`` messages per second), or None."""
    rate = float(getattr(settings, "global_rate_limit", 0.0) or 0.0)
    if rate <= 0:
        return None
    return RedisTokenBucket(settings.resolved_rate_limit_url, rate=rate)
