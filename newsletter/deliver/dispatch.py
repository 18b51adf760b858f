"""Dispatch: send a shard's messages and record every outcome atomically, resumable after a crash.

    dispatch_shard(engine, *, run_id, shard, transport, settings, now, policy=None)
    dispatch_run(engine, *, run_id, transport, settings, now, policy=None)
    resume(engine, *, run_id, transport, settings, now, policy=None)
    retry_failed(engine, *, run_id, transport, settings, now, policy=None, include_unknown=False)

Per message, in the caller's thread (``Transport.send_many`` pulls lazily): render it (the
campaign's template compiled once per run; status ``rendered`` is never stored, rendering is
~2,000/s and done just before sending), then mark it ``sending`` in its own committed
transaction -- a conditional UPDATE that also re-checks unsubscribe, bounce and suppression,
so a message whose subscriber left during the run becomes ``skipped`` with that reason --
then hand it to the transport. The outcome is recorded as soon as it arrives: ``sent`` right
after the server's 250; a transient failure (4xx, dropped connection, timeout) goes back to
``planned`` and is tried again after ``Backoff.delay`` (exponential, full jitter) until
``Backoff.max_attempts``, then ``failed`` with reason ``transient``; a 5xx for the recipient
is ``failed``/``bounced`` with the subscriber set ``bounced`` and the address suppressed; any
other 5xx is ``failed``/``rejected``. Failures to *connect* concern our server, not the
message: they give the attempt back, back off, and after ``max_connect_failures`` in a row
the shard stops with :class:`DeliveryPaused` (everything unsent stays ``planned``).

The crash window. A message is ``sending`` from just before its SMTP transaction until the
server's verdict is recorded; with pipelining a connection holds at most two such messages:
one whose content may have reached the server, and the next one, of which only the envelope
was written. After a crash their fate is unknown, and :func:`resume` settles them by
``DispatchPolicy.on_unknown``:

- ``"resend"`` (at-least-once, the default): put them back to ``planned``. Nothing planned is
  ever lost; at most one message per connection per crash may arrive twice, and it carries
  the same Message-ID (derived from the message id), which receiving systems use to drop
  the copy.
- ``"fail"`` (at-most-once): mark them ``failed`` with reason ``unknown_after_crash``; no
  address ever gets two copies, but the envelope-only message, which the server never saw,
  is lost until an operator runs ``retry-failed --include-unknown``.

We default to at-least-once: at-most-once loses a message that was almost surely *not*
delivered in order to avoid a possible duplicate that carries a de-duplicable Message-ID.
The same policy applies to a connection lost right after the content was sent
(``SendResult.maybe_delivered``): resend, or ``failed``/``unknown_after_drop``.
Every other message is sent at most once: a claim needs ``status = 'planned'`` and a record
needs ``status = 'sending'``, so concurrent workers on one shard never both send a message.
Resume a run only when no worker is still delivering it.
"""

from __future__ import annotations

import heapq
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from datetime import time as dt_time
from email.utils import parseaddr
from typing import Any, Literal

from newsletter.config import Settings
from newsletter.db import Engine
from newsletter.deliver.retry import Backoff
from newsletter.deliver.status import settle_run
from newsletter.deliver.transport import OutgoingMessage, SendResult, Transport
from newsletter.plan.cadence import QUIET_DEFERRED, quiet_until, zone
from newsletter.plan.campaigns import CampaignConfigError, parse_campaign_config
from newsletter.render.compile import CompiledTemplate, TemplateCache
from newsletter.render.context import ContextError, _db_sections, build_context
from newsletter.render.lint import lint_template
from newsletter.render.preview import PreviewError, find_template
from newsletter.render.render import RenderedMessage, render_message
from newsletter.render.sandbox import RenderError
from newsletter.store import delivery as store
from newsletter.store import runs

OnUnknown = Literal["resend", "fail"]
DEFAULT_ON_UNKNOWN: OnUnknown = "resend"
UNKNOWN_AFTER_DROP = "unknown_after_drop"
UNKNOWN_REASONS = (store.UNKNOWN_AFTER_CRASH, UNKNOWN_AFTER_DROP)
RENDER_BATCH = 100
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


def quiet_hours_for_run(engine: Engine, *, run_id: int) -> tuple[dt_time, dt_time] | None:
    """The local quiet hours of the run's campaign (None: none, or an unknown run)."""
    found = store.run_campaign_config(engine, run_id=run_id)
    if found is None:
        return None
    try:
        return parse_campaign_config(found[1], campaign=found[0]).cadence.quiet_hours
    except CampaignConfigError as exc:
        raise DeliveryError(str(exc)) from exc


def compile_for_run(engine: Engine, *, run_id: int) -> CompiledTemplate:
    """Lint, then compile, the template of the run's campaign once (database version first,
    then shipped); a template with lint errors stops the run before anything renders."""
    name = store.run_template_name(engine, run_id=run_id)
    if name is None:
        raise DeliveryError(f"run {run_id} does not exist; list runs with `newsletter run list`")
    try:
        source = find_template(name, engine=engine)
        errors = [str(i) for i in lint_template(source) if i.severity == "error"]
        if errors:  # before anything renders: the whole run waits for a fixed template
            raise DeliveryError(
                f"run {run_id}: template {name!r} fails lint, nothing was rendered; fix it, "
                f"then `newsletter run resume {run_id}`:\n  " + "\n  ".join(errors)
            )
        return TemplateCache().get(source)
    except (PreviewError, RenderError, ValueError) as exc:
        raise DeliveryError(f"run {run_id}: template {name!r} cannot be used: {exc}") from exc


def refuse_halted(engine: Engine, *, run_id: int) -> None:
    """A held or cancelled run is a person's decision: refuse to resume it from here."""
    status = runs.run_status(engine, run_id=run_id)
    if status == "held":
        raise DeliveryError(
            f"run {run_id} was paused from the web UI: press Resume on its campaign page"
        )
    if status == "cancelled":
        raise DeliveryError(f"run {run_id} was cancelled; its unsent messages were skipped")


def render_inputs(engine: Engine, *, message_ids: list[int]) -> dict[int, dict[str, Any]]:
    """Plain render input of a batch of messages in three queries.

    The same shape as ``render.context.render_input_from_db`` (a test holds them equal), which
    costs a handful of ORM round trips per message.
    """
    rows = store.render_rows(engine, message_ids=message_ids)
    out: dict[int, dict[str, Any]] = {}
    for mid, h in rows.messages.items():
        config = dict(h.campaign_config or {})
        titles = dict(config.get("section_titles") or {})
        out[mid] = {
            "message_id": mid,
            "arm": h.arm,
            "subscriber": {
                "id": h.subscriber_id,
                "email": h.email,
                "name": h.name,
                "timezone": h.timezone,
                "attributes": dict(h.attributes or {}),
            },
            "campaign": {
                "id": h.campaign_id,
                "name": h.campaign_name,
                "display_name": config.get("display_name"),
                "kind": h.campaign_kind,
            },
            "run": {"id": h.run_id, "scheduled_for": h.scheduled_for},
            "trigger": config.get("trigger") if h.campaign_kind == "trigger" else None,
            "sections": _db_sections(rows.slots[mid], rows.items, titles),
        }
    return out


class _ShardSender:
    """One shard's delivery loop: claim, render, mark sending, send, record, retry."""

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
        self.sender = parseaddr(settings.sender)[1]
        self.result = DispatchResult(run_id)
        self.retries: list[tuple[float, int]] = []
        self.fresh: deque[int] = deque()
        self.cursor = 0
        self.subjects: dict[int, str] = {}
        self.inputs: dict[int, dict[str, Any]] = {}
        self.connect_failures = 0
        self.hold_until = 0.0  # after a connect failure: no new messages until then
        self.paused: str | None = None
        self.checked_at: float | None = None

    def time(self) -> datetime:
        return self.policy.clock() if self.policy.clock else self.now

    def report(self, message_id: int, status: str, reason: str | None = None) -> None:
        if status in ("sent", "failed", "skipped"):
            setattr(self.result, status, getattr(self.result, status) + 1)
        if self.policy.progress is not None:
            self.policy.progress(Outcome(message_id, status, reason))

    def run(self) -> DispatchResult:
        """Send passes until nothing is planned or waiting for a retry, or a person halts it."""
        while True:
            self.transport.send_many(self.messages(), on_result=self.on_result)
            if self.paused is not None:
                raise DeliveryPaused(self.paused)
            if not self.retries or self.result.halted:
                return self.result
            wait = self.retries[0][0] - self.policy.monotonic()
            if wait > 0:
                self.policy.sleep(wait)

    def next_id(self) -> int | None:
        """A retry that is due, else the next fresh planned message, else None."""
        now = self.policy.monotonic()
        if self.retries and self.retries[0][0] <= now:
            return heapq.heappop(self.retries)[1]
        if now < self.hold_until:
            return None
        if not self.fresh:
            self.fresh.extend(
                store.planned_ids(
                    self.engine,
                    run_id=self.run_id,
                    shard=self.shard,
                    after_id=self.cursor,
                    limit=self.policy.batch,
                    due_by=self.now if self.policy.honour_send_time else None,
                )
            )
            if not self.fresh:
                return None
            self.cursor = self.fresh[-1]
        return self.fresh.popleft()

    def halted(self) -> bool:
        """Whether a person held or cancelled the run (the status is re-read once a second)."""
        now = self.policy.monotonic()
        if self.checked_at is None or now - self.checked_at >= CONTROL_CHECK_SECONDS:
            self.checked_at = now
            status = runs.run_status(self.engine, run_id=self.run_id)
            self.result.halted = status if status in runs.HALTED else None
        return self.result.halted is not None

    def messages(self) -> Iterator[OutgoingMessage]:
        """Yield ready messages, each marked ``sending`` just before the transport gets it."""
        while (
            self.paused is None and not self.halted() and (message_id := self.next_id()) is not None
        ):
            outgoing = self.prepare(message_id)
            if outgoing is not None:
                yield outgoing

    def input(self, message_id: int) -> dict[str, Any] | None:
        """Render input fetched for this message and the next ones, a batch at a time."""
        if message_id not in self.inputs:
            ahead = [i for i in list(self.fresh)[:RENDER_BATCH] if i not in self.inputs]
            self.inputs.update(render_inputs(self.engine, message_ids=[message_id, *ahead]))
        return self.inputs.get(message_id)

    def render(self, message_id: int) -> RenderedMessage:
        """Render one message from its (batched) input."""
        data = self.input(message_id)
        self.inputs.pop(message_id, None)
        if data is None:
            raise ContextError(f"message {message_id} has no subscriber, run or campaign")
        context = build_context(data, settings=self.settings)
        return render_message(self.compiled, context, settings=self.settings, now=self.time())

    def deferred(self, message_id: int) -> bool:
        """Defer the message when it is quiet hours where its subscriber is (at the actual
        send time); True when it must not go out now."""
        data = self.input(message_id)
        if data is None or self.quiet_hours is None:
            return False
        tz = zone(data["subscriber"]["timezone"], self.settings.default_timezone)
        until = quiet_until(self.time(), tz, self.quiet_hours)
        if until is None:
            return False
        self.inputs.pop(message_id, None)
        if store.defer_message(
            self.engine, message_id=message_id, until=until, reason=QUIET_DEFERRED, now=self.time()
        ):
            self.report(message_id, "deferred", QUIET_DEFERRED)
        return True

    def prepare(self, message_id: int) -> OutgoingMessage | None:
        """Render and claim one message; quiet hours, a render error or a departed subscriber
        end it here."""
        if self.policy.honour_send_time and self.deferred(message_id):
            return None
        try:
            rendered = self.render(message_id)
        except (RenderError, ContextError) as exc:
            failed = store.mark_failed(
                self.engine,
                message_id=message_id,
                reason="render_error",
                error=str(exc),
                now=self.time(),
                from_status=store.CLAIMABLE,
            )
            if failed:
                self.report(message_id, "failed", "render_error")
            return None
        claim = store.mark_sending(self.engine, message_id=message_id, now=self.time())
        if claim.status == "skipped":
            self.report(message_id, "skipped", claim.reason)
        if claim.status != "sending":
            return None
        self.subjects[message_id] = rendered.subject
        return OutgoingMessage(message_id, self.sender, [rendered.recipient], rendered.bytes)

    def on_result(self, result: SendResult) -> None:
        """Record one outcome in its own transaction, as soon as it arrives."""
        message_id, now = int(result.key), self.time()
        subject = self.subjects.pop(message_id, None)
        error = f"{result.code or ''} {result.stage or ''}: {result.detail}".strip()
        if result.status == "sent":
            self.connect_failures = 0
            if store.mark_sent(self.engine, message_id=message_id, subject=subject, now=now):
                self.report(message_id, "sent")
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


def dispatch_shard(
    engine: Engine,
    *,
    run_id: int,
    shard: int | None,
    transport: Transport,
    settings: Settings,
    now: datetime,
    policy: DispatchPolicy | None = None,
    compiled: CompiledTemplate | None = None,
) -> DispatchResult:
    """Deliver every planned message of one shard of a run (``shard=None``: the whole run).

    A function of (run id, shard) and the database only: shards may run in any process.
    Raises :class:`DeliveryPaused` when the mail server cannot be reached.
    """
    sender = _ShardSender(
        engine,
        run_id=run_id,
        shard=shard,
        transport=transport,
        settings=settings,
        now=now,
        policy=policy or DispatchPolicy(),
        compiled=compiled or compile_for_run(engine, run_id=run_id),
        quiet_hours=quiet_hours_for_run(engine, run_id=run_id),
    )
    return sender.run()


def dispatch_run(
    engine: Engine,
    *,
    run_id: int,
    transport: Transport,
    settings: Settings,
    now: datetime,
    policy: DispatchPolicy | None = None,
) -> DispatchResult:
    """Deliver a run shard by shard; the run is ``delivering`` meanwhile, then settled
    (``delivered``, ``waiting``, or ``planning`` while its plan is incomplete).

    A run a person held or cancelled is not delivered (``halted`` says which), and one halted
    meanwhile stops at its next status check, keeping that status."""
    compiled = compile_for_run(engine, run_id=run_id)
    total = DispatchResult(run_id)
    if not store.set_run_status(engine, run_id=run_id, status="delivering", now=now):
        total.halted = runs.run_status(engine, run_id=run_id)
        return total
    try:
        for shard in store.run_shards(engine, run_id=run_id):
            done = dispatch_shard(
                engine,
                run_id=run_id,
                shard=shard,
                transport=transport,
                settings=settings,
                now=now,
                policy=policy,
                compiled=compiled,
            )
            total.add(done)
            if done.halted:
                total.halted = done.halted
                return total
    except DeliveryPaused:
        store.set_run_status(engine, run_id=run_id, status="paused", now=now)
        raise
    if policy is not None and policy.honour_send_time:
        total.waiting, total.next_send = store.waiting(engine, run_id=run_id, due_by=now)
    settle_run(engine, run_id=run_id, now=now)  # never `delivered` with unplanned members
    return total


def resume(
    engine: Engine,
    *,
    run_id: int,
    transport: Transport,
    settings: Settings,
    now: datetime,
    policy: DispatchPolicy | None = None,
) -> DispatchResult:
    """Finish an interrupted run: settle ``sending`` messages by policy, then deliver the rest."""
    policy = policy or DispatchPolicy()
    compile_for_run(engine, run_id=run_id)  # fail early on an unknown run or a broken template
    refuse_halted(engine, run_id=run_id)
    settled = store.reconcile_sending(
        engine, run_id=run_id, resend=policy.on_unknown == "resend", now=now
    )
    result = dispatch_run(
        engine, run_id=run_id, transport=transport, settings=settings, now=now, policy=policy
    )
    result.reconciled = settled
    return result


def retry_failed(
    engine: Engine,
    *,
    run_id: int,
    transport: Transport,
    settings: Settings,
    now: datetime,
    policy: DispatchPolicy | None = None,
    include_unknown: bool = False,
) -> DispatchResult:
    """Send again the messages that failed for a transient reason (never bounces or rejects).

    ``include_unknown`` also re-sends those whose outcome was unknown after a crash or a
    dropped connection (they may arrive twice; their Message-ID is unchanged).
    """
    compile_for_run(engine, run_id=run_id)
    refuse_halted(engine, run_id=run_id)
    reasons = store.RETRYABLE + (UNKNOWN_REASONS if include_unknown else ())
    requeued = store.requeue_failed(engine, run_id=run_id, reasons=reasons, now=now)
    result = dispatch_run(
        engine, run_id=run_id, transport=transport, settings=settings, now=now, policy=policy
    )
    result.reconciled = requeued
    return result
