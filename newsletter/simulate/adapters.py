"""The simulator's two doors into the real system; everything else it does is the world.

* :func:`ingest` hands the publisher's rows (new subscribers, new items, site behaviour) to the
  store's public ingest path, the one ``newsletter import csv`` and ``newsletter sync`` use
  (``store.ingest.parse_row`` then ``write_batch``): the same validation, the same upserts.
  When the events API lands, behaviour can go through it instead; only this function changes.
* :func:`send_run` runs one digest of a campaign through the real pipeline -- plan (train the
  recommender, cadence, arms, slots), render, deliver -- into a memory transport, and returns
  the messages as the recipients' inboxes received them. Today it calls what ``newsletter run``
  calls (``plan.planner.plan_run`` and ``deliver.dispatch.dispatch_run``); when the
  orchestrator (``newsletter.pipeline``) lands it is the one place to switch to it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from newsletter.config import Settings
from newsletter.deliver.transport import MemoryTransport, OutgoingMessage, SendStatus
from newsletter.store import ingest as store_ingest
from newsletter.store.records import RejectedRow, RowError

SOURCE = "simulator"
BATCH = 5000


class SimulationError(RuntimeError):
    """The simulated world and the pipeline disagree (a row refused, a run not sent)."""


@dataclass(frozen=True)
class SentRun:
    """One delivered run: its id, the plan's stats and every message the transport accepted."""

    run_id: int
    plan: dict[str, Any]
    messages: list[OutgoingMessage]


def ingest(
    engine: Engine,
    entity: str,
    rows: Iterable[Mapping[str, Any]],
    *,
    now: datetime,
    default_timezone: str = "UTC",
) -> int:
    """Validate and write rows of `entity` (subscribers, items, interactions) like a sync.

    Returns the rows written; any refused row is a bug in the world, so it raises
    :class:`SimulationError` naming the row and the reason.
    """
    parsed: list[tuple[int, dict[str, Any]]] = []
    rejected: list[RejectedRow] = []
    for number, raw in enumerate(rows, start=1):
        try:
            parsed.append(
                (number, store_ingest.parse_row(entity, raw, default_timezone=default_timezone))
            )
        except RowError as exc:
            rejected.append(RejectedRow(f"{SOURCE} {entity}", number, str(exc)))
    written = 0
    with engine.begin() as connection:
        for start in range(0, len(parsed), BATCH):
            loaded, refused = store_ingest.write_batch(
                connection,
                entity,
                parsed[start : start + BATCH],
                source=f"{SOURCE} {entity}",
                now=now,
                origin=SOURCE,
            )
            written += loaded
            rejected.extend(refused)
    if rejected:
        raise SimulationError(f"the store refused {len(rejected)} rows, e.g. {rejected[0]}")
    return written


def send_run(
    engine: Engine,
    *,
    campaign: str,
    now: datetime,
    settings: Settings,
    bounce: Iterable[str] = (),
    workers: int = 1,
) -> SentRun:
    """Plan, render and deliver one run of `campaign` at `now` into a memory transport.

    Addresses in `bounce` are refused by the transport with a permanent error, as a receiving
    server refuses a dead mailbox, so the pipeline records the bounce.
    """
    from newsletter.deliver.dispatch import DispatchPolicy, dispatch_run
    from newsletter.plan.planner import plan_run

    failures: dict[str, SendStatus] = {address: "permanent" for address in bounce}
    transport = MemoryTransport(failures=failures)
    planned = plan_run(
        engine, campaign=campaign, now=now, settings=settings, shard_count=workers, workers=workers
    )
    dispatch_run(
        engine,
        run_id=planned.run_id,
        transport=transport,
        settings=settings,
        now=now,
        policy=DispatchPolicy(honour_send_time=False),
    )
    return SentRun(planned.run_id, planned.stats, list(transport.sent))
