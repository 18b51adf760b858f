"""Create, update and list campaigns (the rows; their config is validated by plan.campaigns)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, select

from newsletter.models import Campaign


def upsert_campaign(
    engine: Engine,
    *,
    name: str,
    template_name: str,
    segment_name: str,
    kind: str = "digest",
    schedule: str | None = None,
    config: dict[str, Any] | None = None,
    now: datetime,
) -> Campaign:
    """Insert the campaign NAME, or update its fields if it exists (runs stay attached)."""
    with Session(engine, expire_on_commit=False) as session:
        campaign = session.exec(select(Campaign).where(Campaign.name == name)).first()
        if campaign is None:
            campaign = Campaign(name=name, template_name=template_name, created_at=now)
        campaign.kind = kind
        campaign.template_name = template_name
        campaign.segment_name = segment_name
        campaign.schedule = schedule
        campaign.config = dict(config or {})
        campaign.active = True
        session.add(campaign)
        session.commit()
        session.refresh(campaign)
        return campaign


def list_campaigns(engine: Engine) -> list[Campaign]:
    """Every campaign, by name."""
    with Session(engine) as session:
        return list(session.exec(select(Campaign).order_by(Campaign.name)).all())
