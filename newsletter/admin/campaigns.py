"""Campaign overviews (schedule, arm split, next run, last results) and a person's run control.

    overview(engine, *, now) -> [CampaignView]
    campaign_page(engine, *, name, now) -> CampaignView (with its runs and last report)
    pause(engine, *, run_id) / resume(engine, *, run_id) / cancel(engine, *, run_id, now)
    deliver_now(engine, *, run_id, settings, now)          # after resume, in the background
    report_html(engine, *, run_id) -> str                  # the `newsletter report` page

Pause holds the run: the delivery loop stops claiming messages within a second and nothing
delivers it until it is resumed. Resume releases it and delivers what is due (each message at
its subscriber's send time). Cancel skips every message not yet sent, for good.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from newsletter import pipeline
from newsletter.config import Settings
from newsletter.db import Engine
from newsletter.models import Campaign, Run, RunStatus
from newsletter.plan.campaigns import CampaignConfigError, parse_campaign_config
from newsletter.report.html import RunReport, build_report, write_report
from newsletter.store import overview as store
from newsletter.store import runs
from newsletter.store.reporting import arm_counts

log = logging.getLogger(__name__)
PAUSABLE = {s.value for s in runs.HOLDABLE}
CANCELLABLE = PAUSABLE | {RunStatus.held.value}


class CampaignError(ValueError):
    """The campaign or run does not exist, or cannot do what was asked; says which."""


@dataclass(frozen=True)
class RunView:
    id: int
    scheduled_for: datetime
    status: str
    counts: dict[str, int]
    finished_at: datetime | None

    @property
    def can_pause(self) -> bool:
        return self.status in PAUSABLE and self.unsent > 0

    @property
    def can_resume(self) -> bool:
        return self.status == RunStatus.held

    @property
    def can_cancel(self) -> bool:
        return self.status in CANCELLABLE

    @property
    def unsent(self) -> int:
        return sum(self.counts.get(s, 0) for s in ("planned", "rendered", "sending"))


@dataclass
class CampaignView:
    name: str
    kind: str
    template: str
    segment: str
    schedule: str | None
    trigger: Any
    arms: dict[str, float]
    next_run: str
    active: bool
    runs: list[RunView] = field(default_factory=list)
    report: RunReport | None = None

    @property
    def last_run(self) -> RunView | None:
        return self.runs[0] if self.runs else None


def _arms(campaign: Campaign) -> dict[str, float]:
    try:
        shares = parse_campaign_config(campaign.config, campaign=campaign.name).arms
    except CampaignConfigError:
        return {}
    rest = max(0.0, 1.0 - shares.popular - shares.control)
    return {"personalized": rest, "popular": shares.popular, "control": shares.control}


def next_run(schedule: str | None, *, now: datetime) -> str:
    """The next time a cron schedule fires, in UTC, for people to read."""
    if not schedule:
        return "on demand (no schedule)"
    from apscheduler.triggers.cron import CronTrigger

    try:
        fire = CronTrigger.from_crontab(schedule, timezone=UTC).get_next_fire_time(None, now)
    except ValueError as exc:
        return f"schedule {schedule!r} is not valid cron: {exc}"
    return fire.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if fire else "never"


def _view(
    campaign: Campaign, runs_: list[Run], counts: dict[int, dict[str, int]], now: datetime
) -> CampaignView:
    return CampaignView(
        name=campaign.name,
        kind=campaign.kind,
        template=campaign.template_name,
        segment=campaign.segment_name,
        schedule=campaign.schedule,
        trigger=(campaign.config or {}).get("trigger"),
        arms=_arms(campaign),
        next_run=next_run(campaign.schedule, now=now)
        if campaign.kind == "digest"
        else "on behaviour",
        active=campaign.active,
        runs=[
            RunView(r.id or 0, r.scheduled_for, r.status, counts.get(r.id or 0, {}), r.finished_at)
            for r in runs_
        ],
    )


def overview(engine: Engine, *, now: datetime) -> list[CampaignView]:
    """Every campaign with its last run's counts."""
    found = store.campaigns(engine)
    by_campaign = store.runs_of(engine, campaign_ids=[c.id for c in found if c.id], limit=1)
    counts = store.counts_by_status(
        engine, run_ids=[r.id for rs in by_campaign.values() for r in rs if r.id]
    )
    return [_view(c, by_campaign.get(c.id or 0, []), counts, now) for c in found]


def campaign_page(engine: Engine, *, name: str, now: datetime) -> CampaignView:
    """One campaign, its newest runs with counts by status, and the newest run's report."""
    found = store.campaign(engine, name=name)
    if found is None or found.id is None:
        raise CampaignError(f"no campaign {name!r}")
    runs_ = store.runs_of(engine, campaign_ids=[found.id], limit=20)[found.id]
    counts = store.counts_by_status(engine, run_ids=[r.id for r in runs_ if r.id])
    view = _view(found, runs_, counts, now)
    if view.last_run is not None:
        view.report = run_report(engine, run_id=view.last_run.id)
    return view


def run_report(engine: Engine, *, run_id: int) -> RunReport:
    """Rates per arm and the lift over the holdout, as `newsletter report` computes them."""
    return build_report(run_id, f"Run {run_id}", arm_counts(engine, run_id=run_id))


def report_html(engine: Engine, *, run_id: int) -> str:
    """The page `newsletter report RUN` writes."""
    if store.run(engine, run_id=run_id) is None:
        raise CampaignError(f"no run {run_id}")
    with tempfile.TemporaryDirectory() as folder:
        path = write_report(run_report(engine, run_id=run_id), Path(folder) / "report.html")
        return path.read_text(encoding="utf-8")


def _status(engine: Engine, run_id: int) -> str:
    status = runs.run_status(engine, run_id=run_id)
    if status is None:
        raise CampaignError(f"no run {run_id}")
    return status


def pause(engine: Engine, *, run_id: int) -> None:
    """Hold a run: delivery stops within a second; messages being sent finish."""
    status = _status(engine, run_id)
    if not pipeline.hold_run(engine, run_id=run_id):
        raise CampaignError(f"run {run_id} is {status}: only a run still sending can be paused")


def resume(engine: Engine, *, run_id: int) -> None:
    """Release a held run (call ``deliver_now`` next to send what is due)."""
    status = _status(engine, run_id)
    if not pipeline.release_run(engine, run_id=run_id):
        raise CampaignError(f"run {run_id} is {status}: only a paused run can be resumed")


def cancel(engine: Engine, *, run_id: int, now: datetime) -> int:
    """Cancel a run: every message not yet sent is skipped; returns how many."""
    status = _status(engine, run_id)
    skipped = pipeline.cancel_run(engine, run_id=run_id, now=now)
    if skipped is None:
        raise CampaignError(f"run {run_id} is {status}: it cannot be cancelled")
    return skipped


def deliver_now(
    engine: Engine,
    *,
    run_id: int,
    settings: Settings,
    now: datetime,
) -> int:
    """Deliver a released run's due messages through the configured transport; sent count.

    One delivery pass of ``newsletter.pipeline`` as of ``now``: each message goes at its
    subscriber's send time, quiet hours checked again as it is sent.
    """
    from newsletter.deliver.dispatch import DeliveryError
    from newsletter.deliver.policy import DeliveryPolicy
    from newsletter.deliver.transport import TransportConfigError

    try:
        policy = DeliveryPolicy.from_settings(settings, honour_send_time=True)
        summary = pipeline.deliver_run(
            engine, run_id=run_id, now=now, settings=settings, policy=policy
        )
    except (DeliveryError, TransportConfigError) as exc:
        log.error("delivering run %s after resume failed: %s", run_id, exc)
        return 0
    return summary.result.sent
