"""Plan a run: segment -> suppression -> cadence -> arms -> slots -> persist, shard by shard.

:func:`plan_run` is the entry point. It creates (or finds) the run for ``(campaign,
scheduled_for)``, selects the segment, prepares what every shard shares (the fitted slot
source and the Thompson bank, built on first use and derived from the run id and the
database only, so a remote worker could rebuild them), then plans each shard of subscribers
(``subscriber_id % shard_count``) in its own transaction with :func:`plan_shard`. Subscribers
the run already holds are left alone, so planning the same run again inserts nothing new.
Every left-out member is stored as a ``skipped`` message with its reason, and the run's stats
count subscribers by arm and by reason.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from newsletter.config import Settings
from newsletter.db import as_utc
from newsletter.models import Campaign
from newsletter.plan.campaigns import CampaignConfig, parse_campaign_config
from newsletter.plan.decide import Verdict, decide
from newsletter.plan.experiments import DEFAULT_SALT, assign_arms, experiment_name
from newsletter.plan.exploration import ThompsonBank, thompson_bank
from newsletter.plan.fill import PlannedSlot, fill_personalized, fill_popular
from newsletter.plan.segments import SegmentDefinition, SegmentError
from newsletter.plan.sources import FACTORIES, SourceParts, exploration_inputs
from newsletter.progress import Tick, silent
from newsletter.store import planning as store
from newsletter.store.matrices import Matrices, load_matrices
from newsletter.store.readonly import SqlLimits
from newsletter.store.segments import segment_ids

BATCH = 2000
SlotSourceFactory = Callable[[Matrices, CampaignConfig, datetime], SourceParts]


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


@dataclass(frozen=True)
class Prepared:
    """The fitted slot source, the id maps and the Thompson bank of one run."""

    matrices: Matrices
    parts: SourceParts
    bank: ThompsonBank
    means: np.ndarray


@dataclass
class LazySource:
    """Loads matrices, fits the slot source and draws the bank on first use (a re-plan of a
    fully planned run never needs them). Derived from the run id and the database only."""

    engine: Any
    config: CampaignConfig
    now: datetime
    factory: SlotSourceFactory
    seed: list[int]
    _value: Prepared | None = None

    def get(self) -> Prepared:
        if self._value is None:
            matrices = load_matrices(self.engine)
            parts = self.factory(matrices, self.config, self.now)
            exposures, clicks = store.item_feedback(self.engine)
            pool, pool_clicks, pool_shown, means = exploration_inputs(
                matrices, self.config, now=self.now, exposures=exposures, clicks=clicks
            )
            rng = np.random.default_rng(self.seed)
            bank = thompson_bank(items=pool, clicks=pool_clicks, exposures=pool_shown, rng=rng)
            self._value = Prepared(matrices, parts, bank, means)
        return self._value


class PlanError(ValueError):
    """The run cannot be planned (unknown campaign or segment); the message says which."""


@dataclass(frozen=True)
class RunContext:
    """What every shard of a run shares (rebuildable from the run id and the database)."""

    run_id: int
    campaign: Campaign
    config: CampaignConfig
    scheduled_for: datetime
    members: list[int]
    lazy: LazySource
    experiment: str
    default_salt: str
    default_timezone: str
    seed: int


@dataclass
class PlanResult:
    """Counts of one planning pass (stats come from the persisted plan, so re-runs agree)."""

    run_id: int
    campaign: str
    scheduled_for: datetime
    segment_size: int
    new_messages: int
    stats: dict[str, Any] = field(default_factory=dict)


def resolve_segment(engine: Any, name: str, *, folder: Path | None = None) -> SegmentDefinition:
    """A segment by name: a database row (edited in the UI) first, then ``NAME.yaml`` in the
    user's folder (``folder``, default ``./segments``), then the shipped ``segments/``."""
    from newsletter.db import shipped_path
    from newsletter.plan.segments import load_segment_file, parse_segment, segment_files

    stored = store.segment_source(engine, name)
    if stored is not None:
        return parse_segment(stored, source=f"segment {name!r} (database)", name=name)
    own = folder or Path.cwd() / "segments"
    files = {**segment_files(shipped_path("segments")), **segment_files(own)}
    if name not in files:
        known = ", ".join(sorted(files)) or "none"
        raise SegmentError(
            f"unknown segment {name!r}; known segments: {known} (put your own in {own}/{name}.yaml)"
        )
    return load_segment_file(files[name])


def _campaign(engine: Any, campaign: str | Campaign) -> Campaign:
    if isinstance(campaign, Campaign):
        return campaign
    found = store.find_campaign(engine, campaign)
    if found is None:
        known = ", ".join(store.campaign_names(engine)) or "none yet"
        raise PlanError(f"unknown campaign {campaign!r}; known campaigns: {known}")
    return found


def prepare_run(
    engine: Any,
    *,
    campaign: str | Campaign,
    now: datetime,
    settings: Settings,
    scheduled_for: datetime | None = None,
    source_factory: SlotSourceFactory | None = None,
    segment_folder: Path | None = None,
    seed: int = 0,
) -> RunContext:
    """Create or find the run and select its segment; the model is fitted lazily (LazySource)."""
    camp = _campaign(engine, campaign)
    config = parse_campaign_config(camp.config, campaign=camp.name)
    when = as_utc(scheduled_for or now)
    assert camp.id is not None
    folder = segment_folder or settings.segment_folder
    segment = resolve_segment(engine, camp.segment_name, folder=folder)
    members = segment_ids(engine, segment, now=now, limits=SqlLimits.from_settings(settings))
    factory = source_factory or FACTORIES[config.ranker]
    run = store.ensure_run(engine, campaign_id=camp.id, scheduled_for=when, now=now)
    assert run.id is not None
    lazy = LazySource(engine, config, now, factory, [run.id, seed])
    salt = settings.experiment_salt or DEFAULT_SALT
    return RunContext(
        run_id=run.id,
        campaign=camp,
        config=config,
        scheduled_for=when,
        members=members,
        lazy=lazy,
        experiment=experiment_name(config.arms, salt),
        default_salt=salt,
        default_timezone=settings.default_timezone,
        seed=seed,
    )


def shard_verdicts(engine: Any, ctx: RunContext, ids: list[int]) -> list[Verdict]:
    """Arms (sticky: recorded ones win) and cadence verdicts for one shard's subscribers."""
    profiles = store.profiles(engine, ids)
    known = [p.id for p in profiles]
    recorded = store.assignments(engine, ctx.experiment, known)
    hashed = assign_arms(known, shares=ctx.config.arms, default_salt=ctx.default_salt)
    history = store.send_times(
        engine,
        known,
        start=ctx.scheduled_for - timedelta(days=31),
        end=ctx.scheduled_for + timedelta(days=8),
        exclude_run=ctx.run_id,
    )
    return [
        decide(
            p,
            arm=recorded.get(p.id, str(arm)),
            others=history.get(p.id, []),
            config=ctx.config,
            kind=ctx.campaign.kind,
            scheduled_for=ctx.scheduled_for,
            default_timezone=ctx.default_timezone,
        )
        for p, arm in zip(profiles, hashed, strict=True)
    ]


def shard_slots(
    ctx: RunContext, verdicts: list[Verdict], rng: Any, done: Callable[[int], None] = _none
) -> dict[int, list[PlannedSlot]]:
    """Slots per planned subscriber id: personalized or popularity-ranked by arm (``done`` is
    told how many subscribers each batch filled)."""
    out: dict[int, list[PlannedSlot]] = {}
    planned = [v for v in verdicts if v.status == "planned"]
    if not planned:
        return out
    prep = ctx.lazy.get()
    for arm in ("personalized", "popular"):
        ids = np.array([v.subscriber_id for v in planned if v.arm == arm], dtype=np.int64)
        users = prep.matrices.user_index(ids)
        ids, users = ids[users >= 0], users[users >= 0]
        for start in range(0, len(users), BATCH):
            batch = users[start : start + BATCH]
            if arm == "popular":
                slots = fill_popular(prep.parts.source, batch, config=ctx.config)
            else:
                slots = fill_personalized(
                    prep.parts.source,
                    batch,
                    config=ctx.config,
                    bank=prep.bank,
                    history=prep.parts.history,
                    means=prep.means,
                    rng=rng,
                )
            out.update(zip(ids[start : start + BATCH].tolist(), slots, strict=True))
            done(len(batch))
    return out


def _frames(
    ctx: RunContext,
    verdicts: list[Verdict],
    slots: dict[int, list[PlannedSlot]],
    shard: int,
    now: datetime,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Message, slot and assignment rows of a shard, ready for bulk insertion."""
    rows, slot_rows = [], []
    item_ids = ctx.lazy.get().matrices.item_ids if slots else np.zeros(0, dtype=np.int64)
    for v in verdicts:
        status, reason = v.status, v.reason
        if status == "planned" and not slots.get(v.subscriber_id):
            status, reason = "skipped", "no_items"
        rows.append((v.subscriber_id, v.arm, status, reason, shard, v.planned_for, 0, now))
        for pos, s in enumerate(slots.get(v.subscriber_id, []) if status == "planned" else []):
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
    messages = pd.DataFrame(
        rows,
        columns=[
            "subscriber_id",
            "arm",
            "status",
            "reason",
            "shard",
            "planned_for",
            "attempts",
            "updated_at",
        ],
    )
    for column in ("planned_for", "updated_at"):
        messages[column] = pd.to_datetime(messages[column], utc=True)
    slot_frame = pd.DataFrame(
        slot_rows,
        columns=[
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
        ],
    )
    assignments = pd.DataFrame(
        {
            "experiment": ctx.experiment,
            "subscriber_id": [v.subscriber_id for v in verdicts],
            "arm": [v.arm for v in verdicts],
            "assigned_at": pd.Timestamp(now),
        }
    )
    return messages, slot_frame, assignments


def plan_shard(
    engine: Any,
    ctx: RunContext,
    *,
    shard: int,
    shard_count: int,
    now: datetime,
    write_lock: AbstractContextManager[Any] | None = None,
    progress: Callable[[int], None] = _none,
) -> int:
    """Plan one shard of the run's members in one transaction; returns new messages.

    `write_lock` (held only around the write) serialises writers sharing one SQLite file;
    `progress` is told how many of the shard's members each step settled.
    """
    members = [i for i in ctx.members if i % shard_count == shard]
    done = store.planned_in_run(engine, run_id=ctx.run_id, ids=members)
    ids = [i for i in members if i not in done]
    progress(len(members) - len(ids))
    if not ids:
        return 0
    verdicts = shard_verdicts(engine, ctx, ids)
    rng = np.random.default_rng([ctx.run_id, shard, ctx.seed])
    slots = shard_slots(ctx, verdicts, rng, progress)
    messages, slot_frame, assignments = _frames(ctx, verdicts, slots, shard, now)
    with write_lock or nullcontext():
        new = store.write_shard(
            engine,
            run_id=ctx.run_id,
            messages=messages,
            slots=slot_frame,
            assignments=assignments,
        )
    progress(len(ids) - len(slots))  # the skipped ones
    return new


def run_stats(engine: Any, ctx: RunContext, shard_count: int) -> dict[str, Any]:
    """Counts by arm (planned messages) and by skip reason, from the persisted plan."""
    arms: Counter[str] = Counter()
    skipped: Counter[str] = Counter()
    deferred = 0
    for arm, status, reason, n in store.run_counts(engine, ctx.run_id):
        if status == "skipped":
            skipped[reason or "unknown"] += n
        else:
            arms[arm] += n
            deferred += n if reason == "quiet_hours_deferred" else 0
    return {
        "segment": len(ctx.members),
        "planned": sum(arms.values()),
        "deferred": deferred,
        "arms": dict(sorted(arms.items())),
        "skipped": dict(sorted(skipped.items())),
        "shards": shard_count,
        "experiment": ctx.experiment,
    }


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
    workers: int = 1,
    progress: Tick = silent,
) -> PlanResult:
    """Plan (or re-plan, idempotently) one run of a campaign and store its stats.

    `workers` > 1 plans shards in forked processes (see :mod:`newsletter.plan.parallel`);
    `progress` hears ("planning", subscribers settled, segment size).
    """
    now = as_utc(now)
    ctx = prepare_run(
        engine,
        campaign=campaign,
        now=now,
        settings=settings,
        scheduled_for=scheduled_for,
        source_factory=source_factory,
        segment_folder=segment_folder,
        seed=seed,
    )
    from newsletter.plan.parallel import run_shards

    counter = SettledCounter("planning", len(ctx.members), progress)
    try:
        new = run_shards(
            engine, ctx, shard_count=shard_count, now=now, workers=workers, progress=counter
        )
        stats = run_stats(engine, ctx, shard_count)
        store.finish_run(engine, run_id=ctx.run_id, stats=stats, now=now)
    except BaseException:
        store.discard_unsent_run(engine, run_id=ctx.run_id)  # no half-made run stays behind
        raise
    return PlanResult(
        ctx.run_id, ctx.campaign.name, ctx.scheduled_for, len(ctx.members), new, stats
    )
