"""The delivery policy as data: what a delivery pass does, sendable to any worker.

:class:`DeliveryPolicy` is a frozen dataclass of plain values (JSON with :meth:`as_dict`), so
it is stored with a run's delivery pass and read back by every shard wherever it runs. A
worker turns it into the in-process :class:`~newsletter.deliver.dispatch.DispatchPolicy`
(which adds the process's own clock, sleep and progress callback) with :meth:`runtime`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from newsletter.config import Settings
from newsletter.db import now_utc
from newsletter.deliver.dispatch import (
    DEFAULT_ON_UNKNOWN,
    DeliveryError,
    DispatchPolicy,
    OnUnknown,
    Outcome,
)
from newsletter.deliver.retry import Backoff


@dataclass(frozen=True)
class DeliveryPolicy:
    """Retry, crash-window and timing choices of a delivery pass (see ``dispatch``).

    ``honour_send_time``: send only messages whose local send time has come by the pass's
    time (the rest wait for a later pass); off, everything planned goes now.
    ``live_clock``: stamp ``sent_at`` and the Date header with the real time of each send
    instead of the pass's time (a live run; a run "as of" a given time keeps that time).
    """

    on_unknown: OnUnknown = DEFAULT_ON_UNKNOWN
    honour_send_time: bool = False
    live_clock: bool = False
    max_connect_failures: int = 5
    batch: int = 500
    retry_base: float = 1.0
    retry_factor: float = 2.0
    retry_cap: float = 300.0
    max_attempts: int = 5

    def __post_init__(self) -> None:
        if self.on_unknown not in ("resend", "fail"):
            raise DeliveryError(f"delivery_on_unknown={self.on_unknown!r}; use 'resend' or 'fail'")

    @classmethod
    def from_settings(cls, settings: Settings, **changes: Any) -> DeliveryPolicy:
        """The production policy: default backoff, the crash window from ``settings``."""
        return cls(**{"on_unknown": settings.delivery_on_unknown, **changes})

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-able data."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DeliveryPolicy:
        """The policy stored by :meth:`as_dict` (keys it does not know are refused)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise DeliveryError(f"unknown delivery policy keys {unknown}; known: {sorted(known)}")
        return cls(**data)

    def runtime(self, *, progress: Callable[[Outcome], None] | None = None) -> DispatchPolicy:
        """The in-process policy for this process: real sleep and clock, optional progress."""
        backoff = Backoff(
            base=self.retry_base,
            factor=self.retry_factor,
            cap=self.retry_cap,
            max_attempts=self.max_attempts,
        )
        return DispatchPolicy(
            backoff=backoff,
            on_unknown=self.on_unknown,
            max_connect_failures=self.max_connect_failures,
            clock=now_utc if self.live_clock else None,
            progress=progress,
            batch=self.batch,
            honour_send_time=self.honour_send_time,
        )
