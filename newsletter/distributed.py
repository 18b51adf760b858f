"""A run's shards on Celery workers, over RabbitMQ or Redis: the distributed executor.

    newsletter worker                       # on every machine: a Celery worker
    newsletter run weekly --executor celery --shards 16   # anywhere: sends the shard tasks

The queue carries the same tasks as every other executor -- (database URL, run id, shard
number), as JSON -- and a worker runs them with :func:`newsletter.tasks.run_task`'s recipe:
its own engines, the settings of its own environment (secret key, sender, ``smtp_url``).
The run's members, frozen config and fitted model are in the database (``run_artifact``),
so every worker that reaches the database reads the same model; nothing else is shared.

Delivery guarantees. Tasks are acknowledged *late* (after they finish) and rejected back to
the queue when their worker process dies (``acks_late``, ``reject_on_worker_lost``); one
message per worker at a time (``worker_prefetch_multiplier = 1``). A task delivered twice is
harmless: planning a shard again inserts nothing, delivering it again claims only what is
still ``planned`` (conditional UPDATEs). A task the broker hands out *again* (its first
worker died mid-shard) first settles the shard's messages left ``sending`` by the pass's
``on_unknown`` policy -- resend (the default; same Message-ID) or fail -- then delivers the
rest, so nothing is lost. With Redis as broker a task is handed out again only after
``broker_visibility_timeout`` seconds: keep it above the time one shard takes.

Finalisation is a database count, not a chord: every shard task, when it ends, counts the
run's messages; the one that finds the plan complete marks the run ``planned``, the one that
finds nothing left to send now settles it (``delivered`` or ``waiting``). A run is therefore
finished even when the process that sent the tasks has gone; that process also settles the
run when it has collected every result (the same count: idempotent).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from celery import Celery
from celery.exceptions import TimeoutError as CeleryTimeout

from newsletter.config import Settings
from newsletter.db import OperationalError
from newsletter.deliver.dispatch import DeliveryError, DeliveryPaused, DispatchResult
from newsletter.deliver.shards import current_pass
from newsletter.deliver.status import settle_if_done
from newsletter.plan.planner import finish_plan
from newsletter.plan.runs import load_plan, plan_complete
from newsletter.store import delivery as store
from newsletter.tasks import DeliverShard, ExecutorError, OnDone, PlanShard, Task, Worker

PLAN_TASK = "newsletter.plan_shard"
DELIVER_TASK = "newsletter.deliver_shard"
DEFAULT_TIMEOUT = 24 * 3600.0  # seconds the sender waits for one shard's result

_WORKER: list[Worker] = []


class CeleryError(ExecutorError):
    """The broker cannot be reached or a shard did not finish in time (message says which)."""


def use_settings(settings: Settings | None) -> None:
    """The settings this process's tasks run with (``newsletter worker --config``)."""
    _WORKER[:] = [Worker(settings=settings)]


def _worker() -> Worker:
    if not _WORKER:
        use_settings(None)
    return _WORKER[0]


def celery_app(settings: Settings) -> Celery:
    """A Celery app on ``settings.broker_url`` with the shard tasks registered."""
    app = Celery("newsletter", set_as_current=False)
    app.conf.update(
        broker_url=settings.broker_url,
        result_backend=settings.resolved_result_backend,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_default_queue=settings.celery_queue,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_track_started=True,
        result_expires=7 * 24 * 3600,
        broker_connection_retry_on_startup=True,
        broker_transport_options={"visibility_timeout": settings.broker_visibility_timeout},
        worker_hijack_root_logger=False,
    )
    retry: dict[str, Any] = {
        "bind": True,
        "acks_late": True,
        "reject_on_worker_lost": True,
        "autoretry_for": (OperationalError,),
        "retry_backoff": True,
        "max_retries": 5,
    }
    app.task(name=PLAN_TASK, **retry)(_plan_task)
    app.task(name=DELIVER_TASK, **retry)(_deliver_task)
    return app


def check_broker(app: Celery, url: str) -> None:
    """Fail at once, naming the broker, when it cannot be reached (no endless retries)."""
    try:
        with app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=5)
    except Exception as exc:  # kombu raises the transport's own connection errors
        raise CeleryError(
            f"cannot reach the broker {url!r}: {exc}; start it or set broker_url "
            "(NEWSLETTER_BROKER_URL)"
        ) from exc


def _plan_task(task: Any, database_url: str, run_id: int, shard: int) -> dict[str, Any]:
    """Plan one shard; the task that finds the plan complete marks the run ``planned``."""
    worker = _worker()
    new = PlanShard(database_url, run_id, shard).run(worker)
    engine = worker.engine(database_url)
    plan = load_plan(engine, run_id=run_id)
    if plan is not None and plan_complete(engine, run_id=run_id):
        finish_plan(engine, run_id=run_id, now=plan.prepared_at)
    return {"new": new}


def _deliver_task(
    task: Any, database_url: str, run_id: int, shard: int, transport_url: str | None
) -> dict[str, Any]:
    """Deliver one shard (after settling what a lost worker left ``sending``), then count."""
    worker = _worker()
    engine = worker.engine(database_url)
    try:
        delivery = current_pass(engine, run_id=run_id)
        settled = 0
        if (task.request.delivery_info or {}).get("redelivered"):
            resend = delivery.policy.on_unknown == "resend"
            settled = store.reconcile_sending(
                engine, run_id=run_id, shard=shard, resend=resend, now=delivery.now
            )
        result = DeliverShard(database_url, run_id, shard, transport_url).run(worker)
    except DeliveryPaused as exc:
        return {"error": "paused", "message": str(exc)}
    except DeliveryError as exc:
        return {"error": "delivery", "message": str(exc)}
    result.reconciled += settled
    settle_if_done(engine, run_id=run_id, now=delivery.now)
    return _result_data(result)


def _result_data(result: DispatchResult) -> dict[str, Any]:
    data = dict(vars(result))
    data["next_send"] = result.next_send.isoformat() if result.next_send else None
    return data


def _result_from(data: dict[str, Any]) -> DispatchResult:
    values = dict(data)
    if values.get("next_send"):
        values["next_send"] = datetime.fromisoformat(values["next_send"])
    return DispatchResult(**values)


def _send(app: Celery, task: Task, queue: str) -> Any:
    if isinstance(task, PlanShard):
        args: list[Any] = [task.database_url, task.run_id, task.shard]
        return app.send_task(PLAN_TASK, args=args, queue=queue)
    args = [task.database_url, task.run_id, task.shard, task.transport_url]
    return app.send_task(DELIVER_TASK, args=args, queue=queue)


def _decode(task: Task, payload: dict[str, Any]) -> Any:
    if "error" in payload:
        kind = DeliveryPaused if payload["error"] == "paused" else DeliveryError
        raise kind(payload["message"])
    if isinstance(task, PlanShard):
        return int(payload["new"])
    return _result_from(payload)


class CeleryExecutor:
    """Send the tasks to the Celery queue and collect their results in task order.

    Needs at least one running ``newsletter worker`` on the same broker; waits at most
    ``timeout`` seconds for each shard. A shard that stopped delivery (the mail server could
    not be reached) raises :class:`DeliveryPaused` here once every shard has answered.
    """

    in_process = False

    def __init__(self, settings: Settings, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.settings = settings
        self.timeout = timeout

    def run(
        self, tasks: Sequence[Task], *, worker: Worker, on_done: OnDone | None = None
    ) -> list[Any]:
        if not tasks:
            return []
        app = celery_app(self.settings)
        check_broker(app, self.settings.broker_url)
        sent = [_send(app, task, self.settings.celery_queue) for task in tasks]
        deadline = time.monotonic() + self.timeout
        results, errors = [], []
        for task, handle in zip(tasks, sent, strict=True):
            payload = self._wait(handle, task, deadline)
            try:
                value = _decode(task, payload)
            except DeliveryError as exc:
                errors.append(exc)
                continue
            results.append(value)
            if on_done is not None:
                on_done(task, value)
        if errors:
            raise errors[0]
        return results

    def _wait(self, handle: Any, task: Task, deadline: float) -> dict[str, Any]:
        left = max(1.0, deadline - time.monotonic())
        try:
            return dict(handle.get(timeout=left, propagate=True))
        except CeleryTimeout as exc:
            raise CeleryError(
                f"shard {task.shard} of run {task.run_id} did not finish within "
                f"{self.timeout:.0f}s: is a `newsletter worker` running on "
                f"{self.settings.broker_url!r}?"
            ) from exc
