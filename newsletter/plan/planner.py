"""Plan a run: segment -> suppression -> cadence -> arms -> slots -> persist, shard by shard.

:func:`plan_shard` plans one shard of a prepared run (``newsletter.plan.runs``): the members
with ``subscriber_id % shard_count == shard`` that have no message yet, in one transaction.
It needs nothing but the database and its arguments -- the run's plan, members and fitted
model are artifacts in the database -- so any process may plan any shard, any number of
times: subscribers the run already holds are left alone, and planning again inserts nothing.
Every left-out member is stored as a ``skipped`` message with its reason; :func:`finish_plan`
counts subscribers by arm and by reason and marks the run ``planned`` once it is complete.
:func:`plan_run` does all of it in this process (``newsletter.pipeline`` runs the shards
through an executor instead).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from newsletter.config import Settings
from newsletter.db import as_utc
from newsletter.enums import Arm, MessageStatus
from newsletter.models import Campaign
from newsletter.plan.decide import Verdict, decide
from newsletter.plan.experiments import assign_arms
from newsletter.plan.fill import PlannedSlot, fill_personalized, fill_popular
from newsletter.plan.runs import (
    PlanError,
    RunModel,
    RunPlan,
    SlotSourceFactory,
    load_members,
    load_model,
    load_plan,
    plan_complete,
    prepare_run,
    resolve_segment,
)
from newsletter.progress import Tick, silent
from newsletter.store import planning as store

__all__ = [
    "PlanError",
    "PlanResult",
    "SettledCounter",
    "finish_plan",
    "plan_run",
    "plan_shard",
    "resolve_segment",
]
BATCH = 2000
MESSAGE_COLUMNS = [
    "subscriber_id",
    "arm",
    "status",
    "reason",
    "shard",
    "planned_for",
    "attempts",
    "updated_at",
]
SLOT_COLUMNS = [
    "subscriber_id",
    "position",
    "section",
    "item_id",
    "source",
    "score",
    "propensity",
    "reason_kind",
    "reason_anchor",
    "reason_text",
]


def _none(_: int) -> None:
    return None


@dataclass
class SettledCounter:
    """Adds up settled subscribers and reports the running total to a Tick."""

    stage: str
    total: int
    tick: Tick
    done: int = 0

    def __post_init__(self) -> None:
        self.tick(self.stage, 0, self.total)

    def __call__(self, n: int) -> None:
        if n:
            self.done = min(self.total, self.done + n)
            self.tick(self.stage, self.done, self.total)


@dataclass
class PlanResult:
    """Counts of one planning pass (stats come from the persisted plan, so re-runs agree)."""

    run_id: int
    campaign: str
    scheduled_for: datetime
    segment_size: int
    new_messages: int
    stats: dict[str, Any] = field(default_factory=dict)


def shard_verdicts(engine: Any, plan: RunPlan, ids: list[int]) -> list[Verdict]:
    """Arms (sticky: recorded ones win) and cadence verdicts for one shard's subscribers."""
    config = plan.campaign_config
    profiles = store.profiles(engine, ids=ids)
    known = [p.id for p in profiles]
    recorded = store.assignments(engine, experiment=plan.experiment, ids=known)
    hashed = assign_arms(known, shares=config.arms, default_salt=plan.default_salt)
    history = store.send_times(
        engine,
        ids=known,
        start=plan.scheduled_for - timedelta(days=31),
        end=plan.scheduled_for + timedelta(days=8),
        exclude_run=plan.run_id,
    )
    return [
        decide(
            p,
            arm=recorded.get(p.id, str(arm)),
            others=history.get(p.id, []),
            config=config,
            kind=plan.kind,
            scheduled_for=plan.scheduled_for,
            default_timezone=plan.default_timezone,
            local_schedule=plan.local_schedule,
        )
        for p, arm in zip(profiles, hashed, strict=True)
    ]


def shard_slots(
    plan: RunPlan,
    model: RunModel,
    verdicts: list[Verdict],
    rng: Any,
    done: Callable[[int], None] = _none,
) -> dict[int, list[PlannedSlot]]:
    """Slots per planned subscriber id: personalized or popularity-ranked by arm (``done`` is
    told how many subscribers each batch filled)."""
    out: dict[int, list[PlannedSlot]] = {}
    planned = [v for v in verdicts if v.status == MessageStatus.planned]
    config = plan.campaign_config
    for arm in ("personalized", "popular"):
        ids = np.array([v.subscriber_id for v in planned if v.arm == arm], dtype=np.int64)
        users = model.user_index(ids)
        ids, users = ids[users >= 0], users[users >= 0]
        for start in range(0, len(users), BATCH):
            batch = users[start : start + BATCH]
            if arm == Arm.popular:
                slots = fill_popular(model.parts.source, batch, config=config)
            else:
                slots = fill_personalized(
                    model.parts.source,
                    batch,
                    config=config,
                    bank=model.bank,
                    history=model.parts.history,
                    means=model.means,
                    rng=rng,
                )
            out.update(zip(ids[start : start + BATCH].tolist(), slots, strict=True))
            done(len(batch))
    return out


def shard_frames(
    plan: RunPlan,
    verdicts: list[Verdict],
    slots: dict[int, list[PlannedSlot]],
    item_ids: np.ndarray,
    shard: int,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Message, slot and assignment rows of a shard, ready for bulk insertion."""
    rows, slot_rows = [], []
    now = plan.prepared_at
    for v in verdicts:
        status, reason = v.status, v.reason
        if status == MessageStatus.planned and not slots.get(v.subscriber_id):
            status, reason = MessageStatus.skipped, "no_items"
        rows.append((v.subscriber_id, v.arm, status, reason, shard, v.planned_for, 0, now))
        for pos, s in enumerate(
            slots.get(v.subscriber_id, []) if status == MessageStatus.planned else []
        ):
            slot_rows.append(
                (
                    v.subscriber_id,
                    pos,
                    s.section,
                    int(item_ids[s.item]),
                    s.source,
                    s.score,
                    s.propensity,
                    s.reason_kind,
                    s.reason_anchor,
                    s.reason_text,
                )
            )
    messages = pd.DataFrame(rows, columns=MESSAGE_COLUMNS)
    for column in ("planned_for", "updated_at"):
        messages[column] = pd.to_datetime(messages[column], utc=True)
    slot_frame = pd.DataFrame(slot_rows, columns=SLOT_COLUMNS)
    assignments = pd.DataFrame(
        {
            "experiment": plan.experiment,
            "subscriber_id": [v.subscriber_id for v in verdicts],
            "arm": [v.arm for v in verdicts],
            "assigned_at": pd.Timestamp(now),
        }
    )
    return messages, slot_frame, assignments


@dataclass(frozen=True)
class ShardPlan:
    """One shard's plan, computed but not yet written (see `compute_shard`)."""

    shard: int
    messages: pd.DataFrame
    slots: pd.DataFrame
    assignments: pd.DataFrame
    skipped: int  # members settled without slots (skips), reported after the write


ShardMapper = Callable[[int, range], Iterable["ShardPlan | None"]]
"""(run id, shard numbers) -> each shard's `compute_shard`, in shard order."""


def compute_shard(
    engine: Any, *, run_id: int, shard: int, progress: Callable[[int], None] = _none
) -> ShardPlan | None:
    """Plan one shard of a prepared run without writing it; None when it is already planned.

    Reads only: a process may compute shards side by side and hand them to one writer
    (`write_planned_shard`), which keeps the database's ids in shard order.
    """
    plan = load_plan(engine, run_id=run_id)
    if plan is None:
        raise PlanError(f"run {run_id} is not prepared: plan its campaign first (newsletter plan)")
    if not 0 <= shard < plan.shard_count:
        raise PlanError(f"run {run_id} has shards 0..{plan.shard_count - 1}, not {shard}")
    members = load_members(engine, run_id=run_id)
    mine = members[members % plan.shard_count == shard].tolist()
    done = store.planned_in_run(engine, run_id=run_id, ids=mine)
    ids = [i for i in mine if i not in done]
    progress(len(mine) - len(ids))
    if not ids:
        return None
    verdicts = shard_verdicts(engine, plan, ids)
    rng = np.random.default_rng([run_id, shard, plan.seed])
    slots: dict[int, list[PlannedSlot]] = {}
    item_ids = np.zeros(0, dtype=np.int64)
    if any(v.status == MessageStatus.planned for v in verdicts):
        model = load_model(engine, run_id=run_id)
        slots = shard_slots(plan, model, verdicts, rng, progress)
        item_ids = model.item_ids
    messages, slot_frame, assignments = shard_frames(plan, verdicts, slots, item_ids, shard)
    return ShardPlan(shard, messages, slot_frame, assignments, len(ids) - len(slots))


def write_planned_shard(
    engine: Any, *, run_id: int, planned: ShardPlan, progress: Callable[[int], None] = _none
) -> int:
    """Write a computed shard in one transaction; returns its new messages."""
    new = store.write_shard(
        engine,
        run_id=run_id,
        messages=planned.messages,
        slots=planned.slots,
        assignments=planned.assignments,
    )
    progress(planned.skipped)
    return new


def plan_shard(
    engine: Any, *, run_id: int, shard: int, progress: Callable[[int], None] = _none
) -> int:
    """Plan one shard of a prepared run in one transaction; returns its new messages.

    A function of the database and (run id, shard) only: the run's plan, members and model
    are its artifacts, and the shard's random draws are seeded by (run, shard, seed).
    `progress` is told how many of the shard's members each step settled.
    """
    planned = compute_shard(engine, run_id=run_id, shard=shard, progress=progress)
    if planned is None:
        return 0
    return write_planned_shard(engine, run_id=run_id, planned=planned, progress=progress)


def run_stats(engine: Any, plan: RunPlan) -> dict[str, Any]:
    """Counts by arm (planned messages) and by skip reason, from the persisted plan."""
    arms: Counter[str] = Counter()
    skipped: Counter[str] = Counter()
    deferred = 0
    for arm, status, reason, n in store.plan_counts(engine, run_id=plan.run_id):
        if status == MessageStatus.skipped:
            skipped[reason or "unknown"] += n
        else:
            arms[arm] += n
            deferred += n if reason == "quiet_hours_deferred" else 0
    return {
        "segment": plan.members,
        "planned": sum(arms.values()),
        "deferred": deferred,
        "arms": dict(sorted(arms.items())),
        "skipped": dict(sorted(skipped.items())),
        "shards": plan.shard_count,
        "experiment": plan.experiment,
    }


def finish_plan(engine: Any, *, run_id: int, now: datetime, new_messages: int = 0) -> PlanResult:
    """Count the persisted plan; a complete plan marks the run ``planned`` with its stats."""
    plan = load_plan(engine, run_id=run_id)
    if plan is None:
        raise PlanError(f"run {run_id} is not prepared: plan its campaign first (newsletter plan)")
    stats = run_stats(engine, plan)
    if plan_complete(engine, run_id=run_id):
        store.finish_run(engine, run_id=run_id, stats=stats, now=as_utc(now))
    return PlanResult(run_id, plan.campaign, plan.scheduled_for, plan.members, new_messages, stats)


def plan_run(
    engine: Any,
    *,
    campaign: str | Campaign,
    now: datetime,
    settings: Settings,
    scheduled_for: datetime | None = None,
    shard_count: int = 1,
    source_factory: SlotSourceFactory | None = None,
    segment_folder: Path | None = None,
    seed: int = 0,
    progress: Tick = silent,
    compute_shards: ShardMapper | None = None,
) -> PlanResult:
    """Prepare (or find) one run of a campaign and plan all its shards in this process.

    `compute_shards(run_id, shards)` may compute the shards elsewhere (the simulator forks
    one process per shard); they are written here, in shard order, so ids do not depend on
    which shard finished first. Idempotent: planning again inserts nothing.
    ``newsletter.pipeline`` does the same with the shards on an executor (in-process or a
    process pool). `progress` hears
    ("planning", subscribers settled, segment size). A plan that fails deletes its run when
    nothing of it was handed to delivery (no half-made run stays behind).
    """
    plan = prepare_run(
        engine,
        campaign=campaign,
        now=now,
        settings=settings,
        scheduled_for=scheduled_for,
        shard_count=shard_count,
        source_factory=source_factory,
        segment_folder=segment_folder,
        seed=seed,
    )
    counter = SettledCounter("planning", plan.members, progress)
    try:
        new = 0
        if plan_complete(engine, run_id=plan.run_id):
            counter(plan.members)
        elif compute_shards is None:
            new = sum(
                plan_shard(engine, run_id=plan.run_id, shard=s, progress=counter)
                for s in range(plan.shard_count)
            )
        else:
            for planned in compute_shards(plan.run_id, range(plan.shard_count)):
                if planned is not None:
                    new += write_planned_shard(
                        engine, run_id=plan.run_id, planned=planned, progress=counter
                    )
        return finish_plan(engine, run_id=plan.run_id, now=now, new_messages=new)
    except BaseException:
        store.discard_unsent_run(engine, run_id=plan.run_id)
        raise
