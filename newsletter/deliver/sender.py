"""One shard's delivery loop, a batch at a time: claim, render, send, record, retry.

Up to ``RENDER_AHEAD`` due ids are read with their render input (four queries) and rendered;
a batch of ``claim_batch`` of them is claimed in one committed transaction (``planned ->
sending``, recipients re-checked);
the claimed messages are handed to the transport one by one, and their 250s are recorded
``sent`` in one transaction per batch (when the batch's results are in, and always before
the next batch is claimed). Failures are rare and recorded one by one, as they arrive.
Messages claimed but never handed to the transport (a pause, a hold, a cancel) go back to
``planned`` with their attempt returned. See ``dispatch`` for the crash window.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterator, Mapping
from datetime import datetime
from datetime import time as dt_time
from email.utils import parseaddr
from typing import Any

from newsletter.config import Settings
from newsletter.db import Engine
from newsletter.deliver.outcomes import (
    CONTROL_CHECK_SECONDS,
    UNKNOWN_AFTER_DROP,
    DeliveryPaused,
    DispatchPolicy,
    DispatchResult,
    Outcome,
)
from newsletter.deliver.transport import OutgoingMessage, SendResult, Transport
from newsletter.enums import MessageStatus
from newsletter.plan.cadence import QUIET_DEFERRED, quiet_until, zone
from newsletter.render.compile import CompiledTemplate
from newsletter.render.render import RenderedMessage
from newsletter.render.stored import RenderFailure, render_stored, stored_inputs
from newsletter.store import delivery as store
from newsletter.store import runs

# Messages read and rendered per round trip to the database, whatever the claim batch: the
# render input costs four queries per batch, so claiming one message at a time (SMTP's
# default) must not also mean reading one at a time. Rendered messages hold no database
# state until they are claimed, so this does not widen the crash window.
RENDER_AHEAD = 100


class ShardSender:
    """One shard's delivery loop (see the module docstring)."""

    def __init__(
        self,
        engine: Engine,
        *,
        run_id: int,
        shard: int | None,
        transport: Transport,
        settings: Settings,
        now: datetime,
        policy: DispatchPolicy,
        compiled: CompiledTemplate,
        quiet_hours: tuple[dt_time, dt_time] | None = None,
    ) -> None:
        self.engine, self.run_id, self.shard = engine, run_id, shard
        self.transport, self.settings, self.policy = transport, settings, policy
        self.compiled, self.now, self.quiet_hours = compiled, now, quiet_hours
        self.batch = max(1, policy.claim_batch or int(getattr(transport, "claim_batch", 1)))
        self.sender = parseaddr(settings.sender)[1]
        self.result = DispatchResult(run_id)
        self.retries: list[tuple[float, int]] = []
        self.fresh: deque[int] = deque()
        self.ready: deque[OutgoingMessage] = deque()  # claimed, not yet handed over
        self.rendered: deque[tuple[int, RenderedMessage]] = deque()  # rendered, not claimed
        self.ahead = max(self.batch, RENDER_AHEAD)
        self.pending: list[tuple[int, str | None, datetime]] = []  # 250s not yet recorded
        self.cursor = 0
        self.subjects: dict[int, str] = {}
        self.connect_failures = 0
        self.hold_until = 0.0  # after a connect failure: no new messages until then
        self.paused: str | None = None
        self.checked_at: float | None = None

    def time(self) -> datetime:
        return self.policy.clock() if self.policy.clock else self.now

    def report(self, message_id: int, status: str, reason: str | None = None) -> None:
        if status in (MessageStatus.sent, MessageStatus.failed, MessageStatus.skipped):
            setattr(self.result, status, getattr(self.result, status) + 1)
        if self.policy.progress is not None:
            self.policy.progress(Outcome(message_id, status, reason))

    def run(self) -> DispatchResult:
        """Send passes until nothing is planned or waiting for a retry, or a person halts it."""
        while True:
            try:
                self.transport.send_many(self.messages(), on_result=self.on_result)
            finally:
                self.flush()
                self.release()
            if self.paused is not None:
                raise DeliveryPaused(self.paused)
            if not self.retries or self.result.halted:
                return self.result
            wait = self.retries[0][0] - self.policy.monotonic()
            if wait > 0:
                self.policy.sleep(wait)

    def next_ids(self, limit: int) -> list[int]:
        """Up to `limit` ids: the retries that are due, then fresh planned messages."""
        now, out = self.policy.monotonic(), list[int]()
        while len(out) < limit and self.retries and self.retries[0][0] <= now:
            out.append(heapq.heappop(self.retries)[1])
        while len(out) < limit and now >= self.hold_until:
            if not self.fresh:
                self.fresh.extend(
                    store.planned_ids(
                        self.engine,
                        run_id=self.run_id,
                        shard=self.shard,
                        after_id=self.cursor,
                        limit=max(self.policy.batch, limit),
                        due_by=self.now if self.policy.honour_send_time else None,
                    )
                )
                if not self.fresh:
                    break
                self.cursor = self.fresh[-1]
            out.append(self.fresh.popleft())
        return out

    def halted(self) -> bool:
        """Whether a person held or cancelled the run (the status is re-read once a second)."""
        now = self.policy.monotonic()
        if self.checked_at is None or now - self.checked_at >= CONTROL_CHECK_SECONDS:
            self.checked_at = now
            status = runs.run_status(self.engine, run_id=self.run_id)
            self.result.halted = status if status in runs.HALTED else None
        return self.result.halted is not None

    def messages(self) -> Iterator[OutgoingMessage]:
        """Yield claimed messages; record the last batch's 250s before claiming the next."""
        while self.paused is None and not self.halted():
            if self.policy.monotonic() < self.hold_until:
                return  # a connect failure: hold; the unsent claims go back (run's finally)
            if not self.ready:
                self.flush()
                if not self.fill():
                    return
                continue
            yield self.ready.popleft()

    def fill(self) -> bool:
        """Claim the next batch of rendered messages, rendering ahead when none are left
        (False: nothing is due)."""
        if not self.rendered and not self.render_next():
            return False
        good = dict(self.rendered.popleft() for _ in range(min(self.batch, len(self.rendered))))
        claim = store.claim_many(self.engine, message_ids=list(good), now=self.time())
        for mid, reason in claim.skipped.items():
            self.report(mid, "skipped", reason)
        for mid in claim.claimed:
            self.subjects[mid] = good[mid].subject
            self.ready.append(
                OutgoingMessage(mid, self.sender, [good[mid].recipient], good[mid].bytes)
            )
        return True

    def render_next(self) -> bool:
        """Read and render up to RENDER_AHEAD due messages (False: nothing is due)."""
        ids = self.next_ids(self.ahead)
        if not ids:
            return False
        inputs = stored_inputs(self.engine, message_ids=ids)
        if self.policy.honour_send_time and self.quiet_hours is not None:
            ids = [mid for mid in ids if not self.deferred(mid, inputs.get(mid))]
        rendered = render_stored(
            self.engine,
            message_ids=ids,
            compiled=self.compiled,
            settings=self.settings,
            now=self.time(),
            inputs=inputs,
        )
        for mid, done in rendered.items():
            if isinstance(done, RenderFailure):
                self.render_failed(mid, done.error)
            else:
                self.rendered.append((mid, done))
        return True

    def render_failed(self, message_id: int, error: str) -> None:
        if store.mark_failed(
            self.engine,
            message_id=message_id,
            reason="render_error",
            error=error,
            now=self.time(),
            from_status=store.CLAIMABLE,
        ):
            self.report(message_id, "failed", "render_error")

    def deferred(self, message_id: int, data: Mapping[str, Any] | None) -> bool:
        """Defer the message when it is quiet hours where its subscriber is (at the actual
        send time); True when it must not go out now."""
        if data is None or self.quiet_hours is None:
            return False
        tz = zone(data["subscriber"]["timezone"], self.settings.default_timezone)
        until = quiet_until(self.time(), tz, self.quiet_hours)
        if until is None:
            return False
        if store.defer_message(
            self.engine, message_id=message_id, until=until, reason=QUIET_DEFERRED, now=self.time()
        ):
            self.report(message_id, "deferred", QUIET_DEFERRED)
        return True

    def flush(self) -> None:
        """Record the 250s received so far, in one transaction."""
        if self.pending:
            sent, self.pending = self.pending, []
            for mid in store.record_sent(self.engine, sent=sent):
                self.report(mid, "sent")

    def release(self) -> None:
        """Give back the claims never handed to the transport, and forget what was rendered
        ahead; both are sent in a later pass (claimed ones first, in their order)."""
        if self.rendered:
            self.fresh.extendleft(reversed([mid for mid, _ in self.rendered]))
            self.rendered.clear()
        if self.ready:
            ids = [int(m.key) for m in self.ready]
            self.ready.clear()
            for mid in ids:
                self.subjects.pop(mid, None)
            store.release_claims(self.engine, message_ids=ids, now=self.time())
            self.fresh.extendleft(reversed(ids))

    def on_result(self, result: SendResult) -> None:
        """Keep a 250 for the batch record; record any other outcome at once."""
        message_id, now = int(result.key), self.time()
        subject = self.subjects.pop(message_id, None)
        error = f"{result.code or ''} {result.stage or ''}: {result.detail}".strip()
        if result.status == MessageStatus.sent:
            self.connect_failures = 0
            self.pending.append((message_id, subject, now))
            if len(self.pending) >= self.batch:
                self.flush()
        elif result.bounced:
            if store.record_bounce(self.engine, message_id=message_id, error=error, now=now):
                self.report(message_id, "failed", "bounced")
        elif result.status == "permanent":
            self.fail(message_id, "rejected", error)
        elif result.stage == "connect":
            self.connect_failed(message_id, error)
        elif result.maybe_delivered and self.policy.on_unknown == "fail":
            self.fail(message_id, UNKNOWN_AFTER_DROP, error)
        else:
            self.transient(message_id, error)

    def fail(self, message_id: int, reason: str, error: str) -> None:
        if store.mark_failed(
            self.engine, message_id=message_id, reason=reason, error=error, now=self.time()
        ):
            self.report(message_id, "failed", reason)

    def transient(self, message_id: int, error: str) -> None:
        """Back to planned with a jittered delay, or failed once the attempts are used up."""
        attempts = store.message_attempts(self.engine, message_id=message_id)
        backoff = self.policy.backoff
        if not backoff.should_retry(attempts):
            self.fail(message_id, "transient", f"after {attempts} attempts: {error}")
            return
        if store.mark_retry(self.engine, message_id=message_id, error=error, now=self.time()):
            due = self.policy.monotonic() + backoff.delay(attempts)
            heapq.heappush(self.retries, (due, message_id))
            self.result.retried += 1
            self.report(message_id, "retry", "transient")

    def connect_failed(self, message_id: int, error: str) -> None:
        """Our server is unreachable: give the attempt back, hold new messages for a backoff
        delay, and pause the shard after too many failures in a row."""
        if not store.mark_retry(
            self.engine, message_id=message_id, error=error, now=self.time(), count=False
        ):
            return
        self.connect_failures += 1
        if self.connect_failures >= self.policy.max_connect_failures:
            self.paused = (
                f"cannot reach the mail server ({self.connect_failures} connection "
                f"failures in a row; last: {error}); fix it, then "
                f"`newsletter run resume {self.run_id}`"
            )
            return
        due = self.policy.monotonic() + self.policy.backoff.delay(self.connect_failures)
        heapq.heappush(self.retries, (due, message_id))
        self.hold_until = max(self.hold_until, due)
