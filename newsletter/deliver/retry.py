"""Timing policies for delivery: retry backoff with jitter and a token-bucket rate limit.

Both take an injectable clock, ``sleep`` and random source, so tests check the policy
deterministically instead of measuring wall time.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

Clock = Callable[[], float]
Sleep = Callable[[float], None]


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with full jitter, capped, for re-trying transient send failures.

    ``delay(attempt)`` for attempt 1, 2, 3 … is uniform in ``[0, min(cap, base * factor**(n-1))]``
    ("full jitter", so many failed messages do not retry in lock-step against a sick server).
    ``max_attempts`` counts every try, the first one included.
    """

    base: float = 1.0
    factor: float = 2.0
    cap: float = 300.0
    max_attempts: int = 5
    rng: random.Random = field(default_factory=random.Random, compare=False)

    def ceiling(self, attempt: int) -> float:
        """Return the largest delay allowed after the ``attempt``-th failed try (1-based)."""
        if attempt < 1:
            raise ValueError(f"attempt must be >= 1, got {attempt}")
        return min(self.cap, self.base * self.factor ** (attempt - 1))

    def delay(self, attempt: int) -> float:
        """Return the jittered wait before the next try after the ``attempt``-th failure."""
        return self.rng.uniform(0.0, self.ceiling(attempt))

    def should_retry(self, attempt: int) -> bool:
        """Tell whether another try is allowed after ``attempt`` tries have failed."""
        return attempt < self.max_attempts


class TokenBucket:
    """Thread-safe token bucket: ``acquire()`` blocks until one message may be sent.

    ``rate`` tokens per second refill up to ``burst``; one bucket is shared by every connection
    of a transport, so the limit holds for the transport as a whole. The lock is held only to
    book a token; the wait happens outside it, so waiting threads queue in booking order.
    """

    def __init__(
        self,
        rate: float,
        *,
        burst: float | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be > 0 messages per second, got {rate}")
        self.rate = float(rate)
        self.burst = float(burst) if burst is not None else max(1.0, self.rate / 10.0)
        if self.burst < 1:
            raise ValueError(f"burst must be >= 1, got {burst}")
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = self.burst
        self._last = clock()

    def acquire(self) -> float:
        """Take one token, sleeping until it is available; return the time slept (seconds)."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
            self._tokens -= 1.0
            wait = -self._tokens / self.rate if self._tokens < 0 else 0.0
        if wait > 0:
            self._sleep(wait)
        return wait
