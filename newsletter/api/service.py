"""The HTTP API on the tracking app: events, upserts, erasure, Segment calls, ESP webhooks, docs.

``add_api(app)`` registers the routers and the state they share (``app.state.api``: the rate
limiter and the events hook, which a trigger engine replaces to evaluate arriving events) and
``app.state.sns_fetch`` (None: fetch Amazon SNS certificates over HTTPS; tests put a fake).
"""

from __future__ import annotations

from fastapi import FastAPI

from newsletter.api import docs
from newsletter.api.auth import ApiState, RateLimiter
from newsletter.api.routes import events, machine, segment, webhooks
from newsletter.track.ingest import evaluate_triggers


def add_api(app: FastAPI) -> None:
    """Register the API routers and their shared state on ``app``."""
    app.state.api = ApiState(limiter=RateLimiter(), on_events_stored=evaluate_triggers)
    app.state.sns_fetch = None
    app.include_router(events.router)
    app.include_router(segment.router)
    app.include_router(webhooks.router)
    app.include_router(docs.router)
    app.include_router(machine.router)
