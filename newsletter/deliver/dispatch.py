"""Dispatch: send a shard's messages and record every outcome atomically, resumable after a crash.

    dispatch_shard(engine, *, run_id, shard, transport, settings, now, policy=None)
    dispatch_run(engine, *, run_id, transport, settings, now, policy=None)
    resume(engine, *, run_id, transport, settings, now, policy=None)
    retry_failed(engine, *, run_id, transport, settings, now, policy=None, include_unknown=False)

A batch at a time, in the caller's thread (``Transport.send_many`` pulls lazily; the loop is
``deliver.sender.ShardSender``): read and render a batch of ``claim_batch`` messages with
``render.stored.render_stored`` (the campaign's template compiled once per run; status
``rendered`` is never stored), then mark the batch ``sending`` in one committed transaction --
a conditional UPDATE that also re-checks unsubscribe, bounce and suppression, so a message
whose subscriber left during the run becomes ``skipped`` with that reason -- then hand the
messages to the transport. The server's 250s are recorded ``sent`` in one transaction per
batch, before the next batch is claimed; a transient failure (4xx, dropped connection, timeout)
goes back to ``planned`` and is tried again after ``Backoff.delay`` (exponential, full jitter)
until ``Backoff.max_attempts``, then ``failed`` with reason ``transient``; a 5xx for the
recipient is ``failed``/``bounced`` with the subscriber set ``bounced`` and the address
suppressed; any other 5xx is ``failed``/``rejected``. Failures to *connect* concern our server,
not the message: they give the attempt back, back off, and after ``max_connect_failures`` in a
row the shard stops with :class:`DeliveryPaused` (everything unsent stays ``planned``).

The crash window. A message is ``sending`` from its batch's claim until the server's verdict
is recorded. With ``claim_batch = 1`` (the default for SMTP and the outbox) a connection holds
at most two such messages: one whose content may have reached the server, and the next one,
of which only the envelope was written. With a batch of N (``smtp://...?batch=N``, or
``DispatchPolicy.claim_batch``) it holds at most N + 1: the price of N times fewer
transactions, and the window below grows to that. The memory transport claims 200 at a time:
what it "sends" dies with the process. After a crash their fate is unknown, and
:func:`resume` settles them by ``DispatchPolicy.on_unknown``:

- ``"resend"`` (at-least-once, the default): put them back to ``planned``. Nothing planned is
  ever lost; at most one message per connection per crash (with batches: at most the
  batch's already-sent ones) may arrive twice, and it carries
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

from datetime import datetime
from datetime import time as dt_time

from newsletter.config import Settings
from newsletter.db import Engine
from newsletter.deliver.outcomes import DEFAULT_ON_UNKNOWN as DEFAULT_ON_UNKNOWN
from newsletter.deliver.outcomes import UNKNOWN_AFTER_DROP as UNKNOWN_AFTER_DROP
from newsletter.deliver.outcomes import UNKNOWN_REASONS
from newsletter.deliver.outcomes import DeliveryError as DeliveryError
from newsletter.deliver.outcomes import DeliveryPaused as DeliveryPaused
from newsletter.deliver.outcomes import DispatchPolicy as DispatchPolicy
from newsletter.deliver.outcomes import DispatchResult as DispatchResult
from newsletter.deliver.outcomes import OnUnknown as OnUnknown
from newsletter.deliver.outcomes import Outcome as Outcome
from newsletter.deliver.sender import ShardSender
from newsletter.deliver.status import settle_run
from newsletter.deliver.transport import Transport
from newsletter.enums import RunStatus
from newsletter.plan.campaigns import CampaignConfigError, parse_campaign_config
from newsletter.render.compile import CompiledTemplate, TemplateCache
from newsletter.render.lint import lint_template
from newsletter.render.sandbox import RenderError
from newsletter.render.templates import PreviewError, find_template
from newsletter.store import delivery as store
from newsletter.store import runs


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
    if status == RunStatus.held:
        raise DeliveryError(
            f"run {run_id} was paused from the web UI: press Resume on its campaign page"
        )
    if status == RunStatus.cancelled:
        raise DeliveryError(f"run {run_id} was cancelled; its unsent messages were skipped")


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
    sender = ShardSender(
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
    if not store.set_run_status(engine, run_id=run_id, status=RunStatus.delivering, now=now):
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
        store.set_run_status(engine, run_id=run_id, status=RunStatus.paused, now=now)
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
