"""The life of a run, in one place: the story of a weekly digest.

Every entry point -- the CLI, a scheduler, the web app's "send" button, queue workers -- calls
these functions and nothing deeper. Each takes its arguments by keyword and ``now`` (time is a
parameter: nothing below reads the clock unless a policy asks for the live one).

1. :func:`create_run` finds or creates the run of a campaign for one scheduled time and
   prepares it: the segment's members, the campaign's config and the fitted model are stored
   with the run (``newsletter.plan.runs``). From here on, every shard of the run is a function
   of (database, run id, shard number).
2. :func:`plan_run` plans every shard -- :class:`~newsletter.tasks.PlanShard` tasks on an
   executor, in this process or a process pool -- then counts the plan; the run is
   ``planned`` once every member has a message (planned, or skipped with its reason).
3. :func:`deliver_run` starts a delivery pass (its time and
   :class:`~newsletter.deliver.policy.DeliveryPolicy`, stored with the run), delivers every
   shard (:class:`~newsletter.tasks.DeliverShard` tasks), then calls :func:`finalize_run`.
4. :func:`finalize_run` reads the run's status from its messages: ``delivered``, ``waiting``
   (local send times still to come), or back to ``planning`` while its plan is incomplete --
   a run is never ``delivered`` with a member left unplanned.
5. :func:`release_due`, later, sends what has become due in every run that waits.
6. :func:`tick` is what a scheduler calls every few minutes: create and plan the digest runs
   whose schedule has come (or finish planning them), then :func:`release_due`.

:func:`record_events` (the events API's entry), :func:`sweep_triggers` and
:func:`fire_trigger` are behavioural triggers (``newsletter.triggers``).
:func:`run_campaign`, :func:`resume_run` and :func:`retry_failed_run` are the three forms of
``newsletter run``, composed from the steps above.

Steps 1-4 and the run forms are written in ``pipeline/runs.py``; steps 5-6 and the triggers in
``pipeline/tick.py``. Import them from here.
"""

from __future__ import annotations

from newsletter.pipeline.runs import (
    PLAN_AHEAD,
    cancel_run,
    create_run,
    deliver_run,
    finalize_run,
    hold_run,
    plan_run,
    release_run,
    resume_run,
    retry_failed_run,
    run_campaign,
)
from newsletter.pipeline.tick import (
    TickResult,
    fire_trigger,
    plan_due_digests,
    record_events,
    release_due,
    sweep_triggers,
    tick,
)

__all__ = [
    "PLAN_AHEAD",
    "TickResult",
    "cancel_run",
    "create_run",
    "deliver_run",
    "finalize_run",
    "fire_trigger",
    "hold_run",
    "plan_due_digests",
    "plan_run",
    "record_events",
    "release_due",
    "release_run",
    "resume_run",
    "retry_failed_run",
    "run_campaign",
    "sweep_triggers",
    "tick",
]
