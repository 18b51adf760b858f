"""What a dispatch pass decides with and reports: its policy, its outcomes, its errors."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from newsletter.deliver.retry import Backoff
from newsletter.store import delivery as store

OnUnknown = Literal["resend", "fail"]
DEFAULT_ON_UNKNOWN: OnUnknown = "resend"
UNKNOWN_AFTER_DROP = "unknown_after_drop"
UNKNOWN_REASONS = (store.UNKNOWN_AFTER_CRASH, UNKNOWN_AFTER_DROP)
CONTROL_CHECK_SECONDS = 1.0  # how often the loop re-reads the run's status (pause, cancel)


class DeliveryError(RuntimeError):
    """Delivery cannot go on (unknown run, broken template); the message says what to fix."""


class DeliveryPaused(DeliveryError):
    """The mail server cannot be reached: unsent messages stay planned; resume the run later."""


@dataclass(frozen=True)
class Outcome:
    """What happened to one message: sent, failed, skipped, or retry (tried again later)."""

    message_id: int
    status: str
    reason: str | None = None


@dataclass(frozen=True)
class DispatchPolicy:
    """Retry, crash-window and timing choices; clocks and sleep are injectable for tests.

    ``clock`` gives the time recorded on messages (``sent_at``) and in the Date header; when
    None, every record uses the ``now`` passed to the dispatcher.

    ``honour_send_time``: send only messages whose planned send time (the subscriber's local
    send hour, or the end of their quiet hours) has come by ``now``, and check the campaign's
    quiet hours again at the actual send time: a message whose subscriber is inside them then
    (a late pass, a retry) is deferred to their end (reason ``quiet_hours_deferred``). The
    others stay planned and the run ``waiting`` until a later pass (``newsletter run resume``,
    the scheduler). Off, every planned message goes now (dry runs to an outbox, tests, the
    demo).

    ``claim_batch``: how many messages are claimed (``sending``) in one transaction and
    recorded ``sent`` in one transaction; None takes the transport's ``claim_batch`` (SMTP and
    outbox 1 unless configured, memory 200). It is also the crash window: see ``dispatch``.
    """

    backoff: Backoff = field(default_factory=Backoff)
    on_unknown: OnUnknown = DEFAULT_ON_UNKNOWN
    max_connect_failures: int = 5
    sleep: Callable[[float], None] = time.sleep
    monotonic: Callable[[], float] = time.monotonic
    clock: Callable[[], datetime] | None = None
    progress: Callable[[Outcome], None] | None = None
    batch: int = 500
    honour_send_time: bool = False
    claim_batch: int | None = None


@dataclass
class DispatchResult:
    """Counts of one dispatch call (outcomes reached in this call; the database has the rest)."""

    run_id: int
    sent: int = 0
    failed: int = 0
    skipped: int = 0
    retried: int = 0
    reconciled: int = 0
    waiting: int = 0  # planned messages whose send time is still to come
    next_send: datetime | None = None  # the earliest of those send times
    halted: str | None = None  # held or cancelled by a person: delivery stopped there

    def add(self, other: DispatchResult) -> None:
        for name in ("sent", "failed", "skipped", "retried", "reconciled"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.halted = other.halted or self.halted
