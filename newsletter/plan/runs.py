"""A prepared run: its frozen parameters, its members and its fitted model, in the database.

:func:`prepare_run` creates (or finds) the run of a campaign for one scheduled time and
persists, once, what every shard of it needs (``newsletter.store.artifacts``):

- the **plan** (JSON, :class:`RunPlan`): the campaign's config and kind as they were, the shard
  count, the preparation time (the ``now`` every shard plans at), experiment, salt, default
  timezone and seed;
- the **members** (.npy int64): the subscriber ids the segment selected at preparation, so the
  run's membership no longer moves with later data;
- the **model** (``newsletter.recommend.artifact``, :class:`RunModel`): the fitted slot source,
  the id maps and the Thompson bank, fitted once from the database as it was.

So :func:`newsletter.plan.planner.plan_shard` is a function of (database, run id, shard) and
nothing else: any process can plan any shard, any number of times, with the same result. The
first writer of each artifact wins, so concurrent preparations agree. Loaded artifacts are
cached per process by their sha256 digest (they never change), so shards planned in one
process load the model once.
"""

from __future__ import annotations

import io
import json
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import IO, Any

import numpy as np

from newsletter.config import Settings
from newsletter.db import as_utc
from newsletter.models import ArtifactKind, Campaign, Run, RunStatus
from newsletter.plan.campaigns import CampaignConfig, parse_campaign_config
from newsletter.plan.experiments import DEFAULT_SALT, experiment_name
from newsletter.plan.exploration import ThompsonBank, thompson_bank
from newsletter.plan.segments import SegmentDefinition, SegmentError
from newsletter.plan.sources import FACTORIES, SourceParts, exploration_inputs
from newsletter.recommend import artifact
from newsletter.store import artifacts
from newsletter.store import planning as store
from newsletter.store.exposures import load_exposures
from newsletter.store.matrices import Matrices, load_matrices
from newsletter.store.readonly import SqlLimits
from newsletter.store.runs import message_count, run_row
from newsletter.store.segments import segment_ids

PLAN_FORMAT = 1
MEMBERS_FORMAT = 1
CACHE_SIZE = 4
SlotSourceFactory = Callable[[Matrices, CampaignConfig, datetime], SourceParts]


class PlanError(ValueError):
    """The run cannot be planned (unknown campaign or segment); the message says which."""


@dataclass(frozen=True)
class RunPlan:
    """A run's frozen parameters: everything a shard needs besides members and model."""

    run_id: int
    campaign: str
    kind: str
    config: dict[str, Any]
    scheduled_for: datetime
    prepared_at: datetime
    shard_count: int
    experiment: str
    default_salt: str
    default_timezone: str
    seed: int
    members: int
    local_schedule: bool = False  # scheduled_for is a local wall time (cron in local time)

    @cached_property
    def campaign_config(self) -> CampaignConfig:
        return parse_campaign_config(self.config, campaign=self.campaign)

    def to_json(self) -> bytes:
        data = asdict(self)
        for key in ("scheduled_for", "prepared_at"):
            data[key] = data[key].isoformat()
        return json.dumps(data, sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> RunPlan:
        data = json.loads(raw)
        for key in ("scheduled_for", "prepared_at"):
            data[key] = datetime.fromisoformat(data[key])
        return cls(**data)


@dataclass(frozen=True)
class RunModel:
    """The fitted slot source of a run, its id maps and its Thompson bank (one artifact)."""

    subscriber_ids: np.ndarray  # sorted; user index u -> subscriber id
    item_ids: np.ndarray  # sorted; item index i -> item id
    parts: SourceParts
    bank: ThompsonBank
    means: np.ndarray

    def user_index(self, ids: Any) -> np.ndarray:
        """User indices of subscriber ids (-1 for subscribers the model has not seen)."""
        ids = np.asarray(ids, dtype=np.int64)
        known = self.subscriber_ids
        if len(known) == 0:
            return np.full(ids.shape, -1, dtype=np.int64)
        pos = np.clip(np.searchsorted(known, ids), 0, len(known) - 1)
        return np.where(known[pos] == ids, pos, -1)


def resolve_segment(engine: Any, name: str, *, folder: Path | None = None) -> SegmentDefinition:
    """A segment by name: a database row (edited in the UI) first, then ``NAME.yaml`` in the
    user's folder (``folder``, default ``./segments``), then the shipped ``segments/``."""
    from newsletter.db import shipped_path
    from newsletter.plan.segments import load_segment_file, parse_segment, segment_files

    stored = store.segment_source(engine, name=name)
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


def find_campaign(engine: Any, campaign: str | Campaign) -> Campaign:
    """The campaign row by name (a row is returned as is); a clear error names the known ones."""
    if isinstance(campaign, Campaign):
        return campaign
    found = store.find_campaign(engine, name=campaign)
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
    shard_count: int = 1,
    source_factory: SlotSourceFactory | None = None,
    segment_folder: Path | None = None,
    seed: int = 0,
    local_schedule: bool = False,
) -> RunPlan:
    """Create or find the run, persist its plan and members, fit and persist its model.

    A run prepared before keeps its artifacts (the arguments then only find it); the model is
    fitted only while some member still lacks a message. The segment is resolved before the
    run row is created, and a preparation that fails deletes a run it left with nothing
    handed to delivery (``store.planning.discard_unsent_run``).
    """
    now = as_utc(now)
    camp = find_campaign(engine, campaign)
    config = parse_campaign_config(camp.config, campaign=camp.name)
    assert camp.id is not None
    when = as_utc(scheduled_for or now)
    run = store.find_run(engine, campaign_id=camp.id, scheduled_for=when)
    plan = None if run is None or run.id is None else load_plan(engine, run_id=run.id)
    definition = None
    if plan is None:  # before the run row is created: an unknown segment leaves no run
        folder = segment_folder or settings.segment_folder
        definition = resolve_segment(engine, camp.segment_name, folder=folder)
    if run is None:
        run = store.ensure_run(engine, campaign_id=camp.id, scheduled_for=when, now=now)
    assert run.id is not None
    try:
        if plan is None and definition is not None:
            plan = _first_plan(
                engine,
                camp=camp,
                config=config,
                run=run,
                definition=definition,
                settings=settings,
                now=now,
                shard_count=shard_count,
                seed=seed,
                local_schedule=local_schedule,
            )
        assert plan is not None
        if not plan_complete(engine, run_id=plan.run_id):
            factory = source_factory or FACTORIES[plan.campaign_config.ranker]
            _ensure_model(engine, plan, factory)
    except BaseException:
        store.discard_unsent_run(engine, run_id=run.id)  # no half-made run stays behind
        raise
    return plan


def _first_plan(
    engine: Any,
    *,
    camp: Campaign,
    config: CampaignConfig,
    run: Run,
    definition: SegmentDefinition,
    settings: Settings,
    now: datetime,
    shard_count: int,
    seed: int,
    local_schedule: bool,
) -> RunPlan:
    """Evaluate the segment once and persist the run's plan and member list."""
    assert run.id is not None
    members = segment_ids(
        engine, definition=definition, now=now, limits=SqlLimits.from_settings(settings)
    )
    salt = settings.experiment_salt or DEFAULT_SALT
    draft = RunPlan(
        run_id=run.id,
        campaign=camp.name,
        kind=camp.kind,
        config=dict(camp.config or {}),
        scheduled_for=as_utc(run.scheduled_for),
        prepared_at=now,
        shard_count=max(1, int(shard_count)),
        experiment=experiment_name(config.arms, salt),
        default_salt=salt,
        default_timezone=settings.default_timezone,
        seed=seed,
        members=len(members),
        local_schedule=local_schedule,
    )
    return _save_plan(engine, draft, members)


def _save_plan(engine: Any, draft: RunPlan, members: list[int]) -> RunPlan:
    """Store members, then the plan (a plan implies its members); an earlier writer wins."""
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(members, dtype=np.int64), allow_pickle=False)
    run_id, now = draft.run_id, draft.prepared_at
    artifacts.save_artifact(
        engine,
        run_id=run_id,
        kind=ArtifactKind.members,
        version=MEMBERS_FORMAT,
        content=buffer.getvalue(),
        now=now,
    )
    stored = load_members(engine, run_id=run_id)
    plan = RunPlan(**{**asdict(draft), "members": len(stored)})
    artifacts.save_artifact(
        engine,
        run_id=run_id,
        kind=ArtifactKind.plan,
        version=PLAN_FORMAT,
        content=plan.to_json(),
        now=now,
    )
    found = load_plan(engine, run_id=run_id)
    assert found is not None
    return found


def fit_model(engine: Any, plan: RunPlan, factory: SlotSourceFactory) -> RunModel:
    """Load the matrices, fit the slot source and draw the Thompson bank, as of preparation."""
    config, now = plan.campaign_config, plan.prepared_at
    matrices = load_matrices(engine)
    if config.ranker == "clicks":
        since = now - timedelta(days=config.click_log_days)
        log = load_exposures(engine, matrices, campaign=plan.campaign, since=since)
        matrices = replace(matrices, exposures=log)
    parts = factory(matrices, config, now)
    exposures, clicks = store.item_feedback(engine)
    x = exploration_inputs(matrices, config, now=now, exposures=exposures, clicks=clicks)
    rng = np.random.default_rng([plan.run_id, plan.seed])
    bank = thompson_bank(
        items=x.pool,
        clicks=x.clicks,
        exposures=x.exposures,
        rng=rng,
        prior_mean=x.prior_mean,
        prior_strength=x.prior_strength,
        max_exposures=config.explore_max_exposures,
    )
    return RunModel(matrices.subscriber_ids, matrices.item_ids, parts, bank, x.means)


def _ensure_model(engine: Any, plan: RunPlan, factory: SlotSourceFactory) -> None:
    """Fit and store the run's model unless it has one (the fitted model stays cached)."""
    if artifacts.artifact_digest(engine, run_id=plan.run_id, kind=ArtifactKind.model):
        return
    model = fit_model(engine, plan, factory)
    digest = artifacts.save_streamed(
        engine,
        run_id=plan.run_id,
        kind=ArtifactKind.model,
        version=artifact.FORMAT,
        write=lambda file: artifact.dump(model, file),
        now=plan.prepared_at,
    )
    _remember(("model", digest), model)


_CACHE: OrderedDict[tuple[str, str], Any] = OrderedDict()


def _remember(key: tuple[str, str], value: Any) -> Any:
    _CACHE[key] = value
    _CACHE.move_to_end(key)
    while len(_CACHE) > CACHE_SIZE:
        _CACHE.popitem(last=False)
    return value


def _cached(engine: Any, *, run_id: int, kind: str, decode: Callable[[IO[bytes]], Any]) -> Any:
    """A run's artifact decoded from its stored file (read part by part when large), from
    this process's cache when its digest was seen."""
    digest = artifacts.artifact_digest(engine, run_id=run_id, kind=kind)
    if digest is None:
        return None
    if (kind, digest) in _CACHE:
        _CACHE.move_to_end((kind, digest))
        return _CACHE[(kind, digest)]
    found = artifacts.open_artifact(engine, run_id=run_id, kind=kind)
    if found is None:
        return None
    with found.file:
        return _remember((kind, found.digest), decode(found.file))


def load_plan(engine: Any, *, run_id: int) -> RunPlan | None:
    """The run's frozen parameters, or None when the run was never prepared."""
    found = artifacts.load_artifact(engine, run_id=run_id, kind=ArtifactKind.plan)
    return None if found is None else RunPlan.from_json(found.content)


def load_members(engine: Any, *, run_id: int) -> np.ndarray:
    """The subscriber ids the run was prepared for (int64, in segment order)."""
    found = _cached(
        engine,
        run_id=run_id,
        kind=ArtifactKind.members,
        decode=lambda file: np.load(io.BytesIO(file.read()), allow_pickle=False),
    )
    if found is None:
        raise PlanError(f"run {run_id} has no member list: prepare it again (newsletter plan)")
    return np.asarray(found)


def load_model(engine: Any, *, run_id: int) -> RunModel:
    """The run's fitted model, as every shard of the run uses it."""
    try:
        found = _cached(engine, run_id=run_id, kind=ArtifactKind.model, decode=artifact.load)
    except artifact.ArtifactError as exc:
        raise PlanError(f"run {run_id}: {exc}") from exc
    if found is None:
        raise PlanError(f"run {run_id} has no fitted model: prepare it again (newsletter plan)")
    return found


def plan_complete(engine: Any, *, run_id: int) -> bool:
    """Whether every member of the run has its message (planned or skipped).

    A run without a stored plan is complete unless it is still ``planning`` with no message
    (a process stopped before it stored the plan; runs written by hand count as complete).
    """
    plan = load_plan(engine, run_id=run_id)
    count = message_count(engine, run_id=run_id)
    if plan is None:
        row = run_row(engine, run_id=run_id)
        return row is not None and (row.status != RunStatus.planning or count > 0)
    return count >= plan.members
