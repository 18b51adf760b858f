"""The fitted model of a trigger campaign, reused for ``MODEL_MAX_AGE`` (a trigger run is
small and frequent; fitting the recommender for each would cost more than the run)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from newsletter.enums import ArtifactKind
from newsletter.models import Campaign
from newsletter.plan.runs import RunModel, RunPlan, fit_model, load_model
from newsletter.plan.sources import FACTORIES
from newsletter.recommend import artifact
from newsletter.store import artifacts
from newsletter.store import triggers as store

MODEL_MAX_AGE = timedelta(hours=6)
_MODELS: dict[int, tuple[datetime, RunModel]] = {}


def trigger_model(engine: Any, plan: RunPlan, campaign: Campaign) -> RunModel:
    """A fitted model for the campaign no older than MODEL_MAX_AGE (this process, the
    database, or fitted now and stored with this run)."""
    assert campaign.id is not None
    now = plan.prepared_at
    cached = _MODELS.get(campaign.id)
    if cached is not None and now - cached[0] < MODEL_MAX_AGE:
        return cached[1]
    recent = store.recent_model_run(engine, campaign_id=campaign.id, since=now - MODEL_MAX_AGE)
    if recent is not None:
        model = load_model(engine, run_id=recent[0])
        _MODELS[campaign.id] = (recent[1], model)
        return model
    model = fit_model(engine, plan, FACTORIES[plan.campaign_config.ranker])
    artifacts.save_artifact(
        engine,
        run_id=plan.run_id,
        kind=ArtifactKind.model,
        version=artifact.FORMAT,
        content=artifact.dumps(model),
        now=now,
    )
    _MODELS[campaign.id] = (now, model)
    return model
