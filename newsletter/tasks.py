"""Shard tasks as plain data, and the executors that run them (in-process or a process pool).

A task names a database, a run and a shard -- nothing else -- so it can be pickled, queued
and run by any process that reaches the database::

    PlanShard(database_url, run_id, shard)      -> new messages (plan.planner.plan_shard)
    DeliverShard(database_url, run_id, shard)   -> DispatchResult (deliver.shards.deliver_shard)

What a task needs beyond its fields comes from the :class:`Worker` of the process running it:
engines by URL, the settings (secret key, sender, transport URL...) and, in the caller's own
process, resources the caller lends (its engine, an open transport, a progress sink). An
:class:`Executor` runs a list of tasks: :class:`InProcess` (the default: one after another in
this process, with the caller's resources) or :class:`ProcessPool` (local processes; each
builds its own worker from the settings it is given); ``newsletter.distributed`` adds
:class:`~newsletter.distributed.CeleryExecutor` over the same tasks (workers on any machine).
"""

from __future__ import annotations

import multiprocessing as mp
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from newsletter.config import Settings, load_settings
from newsletter.db import Engine, make_engine
from newsletter.deliver.dispatch import DispatchResult
from newsletter.deliver.ratelimit import global_bucket
from newsletter.deliver.shards import deliver_shard
from newsletter.deliver.transport import Transport, transport_from_url
from newsletter.plan.planner import plan_shard
from newsletter.progress import ProgressSink

_LENT: weakref.WeakSet[Engine] = weakref.WeakSet()  # engines a forked child must let go


def database_url(engine: Engine) -> str:
    """The URL a task carries to reach the same database (with its password)."""
    return engine.url.render_as_string(hide_password=False)


class Worker:
    """What a process lends the tasks it runs: engines, settings, a transport, progress
    (``progress`` hears delivery outcomes, ``plan_progress`` how many members planning
    settled)."""

    def __init__(
        self,
        *,
        settings: Settings | None = None,
        engine: Engine | None = None,
        transport: Transport | None = None,
        progress: ProgressSink | None = None,
        plan_progress: Callable[[int], None] | None = None,
    ) -> None:
        self._settings = settings
        self._engines: dict[str, Engine] = {}
        if engine is not None:
            self._engines[database_url(engine)] = engine
            _LENT.add(engine)
        self.lent_transport = transport
        self.progress = progress
        self.plan_progress = plan_progress

    @property
    def settings(self) -> Settings:
        """The settings given, else those of this process's environment (read once)."""
        if self._settings is None:
            self._settings = load_settings()
        return self._settings

    def engine(self, url: str) -> Engine:
        """An engine for `url`, made once per process (the lent one when it matches)."""
        if url not in self._engines:
            self._engines[url] = make_engine(url)
        return self._engines[url]

    @contextmanager
    def transport(self, url: str | None) -> Iterator[Transport]:
        """The lent transport, else one opened from `url` (default: settings.smtp_url)."""
        if self.lent_transport is not None:
            yield self.lent_transport
            return
        bucket = global_bucket(self.settings)
        with transport_from_url(url or self.settings.smtp_url, bucket=bucket) as opened:
            yield opened

    def close(self) -> None:
        """Dispose of the engines this worker made (lent ones stay with their owner)."""
        for engine in self._engines.values():
            engine.dispose()


@dataclass(frozen=True)
class PlanShard:
    """Plan shard `shard` of run `run_id` in the database at `database_url`."""

    database_url: str
    run_id: int
    shard: int

    def run(self, worker: Worker) -> int:
        engine = worker.engine(self.database_url)
        if worker.plan_progress is None:
            return plan_shard(engine, run_id=self.run_id, shard=self.shard)
        return plan_shard(
            engine, run_id=self.run_id, shard=self.shard, progress=worker.plan_progress
        )


@dataclass(frozen=True)
class DeliverShard:
    """Deliver shard `shard` of run `run_id` by the run's current delivery pass.

    ``transport_url`` overrides the worker's ``smtp_url`` (``newsletter run --transport``).
    """

    database_url: str
    run_id: int
    shard: int
    transport_url: str | None = None

    def run(self, worker: Worker) -> DispatchResult:
        with worker.transport(self.transport_url) as transport:
            return deliver_shard(
                worker.engine(self.database_url),
                run_id=self.run_id,
                shard=self.shard,
                settings=worker.settings,
                transport=transport,
                progress=worker.progress,
            )


Task = PlanShard | DeliverShard
OnDone = Callable[[Task, Any], None]


class Executor(Protocol):
    """Runs shard tasks and returns their results in task order.

    ``worker`` holds the caller's resources; executors that run tasks in other processes
    (``in_process`` False) pass on only its settings. ``on_done`` is called in the caller's
    process per finished task.
    """

    @property
    def in_process(self) -> bool: ...

    def run(
        self, tasks: Sequence[Task], *, worker: Worker, on_done: OnDone | None = None
    ) -> list[Any]: ...


class InProcess:
    """Run the tasks one after another in this process (the default)."""

    in_process = True

    def run(
        self, tasks: Sequence[Task], *, worker: Worker, on_done: OnDone | None = None
    ) -> list[Any]:
        results = []
        for task in tasks:
            results.append(task.run(worker))
            if on_done is not None:
                on_done(task, results[-1])
        return results


_PROCESS_WORKER: list[Worker] = []


def _start_worker(settings: Settings | None) -> None:
    """Pool initializer: this process's worker (its own engines, the settings given).

    A forked child first lets go of the connections it inherited (they belong to the
    parent's sockets and files) without closing them.
    """
    for engine in list(_LENT):
        engine.dispose(close=False)
    _PROCESS_WORKER[:] = [Worker(settings=settings)]


def run_task(task: Task) -> Any:
    """Run one task with this process's worker (made from its environment on first use)."""
    if not _PROCESS_WORKER:
        _start_worker(None)
    return task.run(_PROCESS_WORKER[0])


def default_start_method() -> str:
    """``fork`` where the platform has it (children inherit the loaded modules and the
    model already in memory: they start in milliseconds), else ``spawn``."""
    return "fork" if "fork" in mp.get_all_start_methods() else "spawn"


@dataclass(frozen=True)
class ProcessPool:
    """Run the tasks in `workers` local processes started with `start_method` (default:
    :func:`default_start_method`). Spawn-safe: a task carries only a database URL, a run id
    and a shard number, and a child builds everything else itself."""

    workers: int
    start_method: str | None = None
    in_process = False

    def run(
        self, tasks: Sequence[Task], *, worker: Worker, on_done: OnDone | None = None
    ) -> list[Any]:
        if not tasks:
            return []
        context = mp.get_context(self.start_method or default_start_method())
        size = max(1, min(self.workers, len(tasks)))
        results = []
        with context.Pool(size, initializer=_start_worker, initargs=(worker.settings,)) as pool:
            for task, result in zip(tasks, pool.imap(run_task, tasks), strict=True):
                results.append(result)
                if on_done is not None:
                    on_done(task, result)
        return results


def executor_for(workers: int) -> Executor:
    """In-process for one worker, else a spawn process pool of `workers`."""
    return InProcess() if workers <= 1 else ProcessPool(workers)


EXECUTORS = ("in-process", "process", "celery")


class ExecutorError(RuntimeError):
    """An executor cannot run its tasks (no broker, no worker); the message says the fix."""


def executor_named(name: str | None, *, workers: int, settings: Settings) -> Executor:
    """The executor called `name` (default: ``settings.executor``): ``in-process`` (a pool
    when `workers` > 1, as ``--workers N`` always meant), ``process`` (a pool of `workers`)
    or ``celery`` (the workers of ``newsletter worker``, over ``settings.broker_url``)."""
    chosen = name or settings.executor
    if chosen == "celery":
        from newsletter.distributed import CeleryExecutor

        return CeleryExecutor(settings)
    if chosen == "process":
        return ProcessPool(workers)
    if chosen == "in-process":
        return executor_for(workers)
    raise ExecutorError(f"unknown executor {chosen!r}: use one of {', '.join(EXECUTORS)}")
