"""The HTTP API on the tracking app: events, upserts, erasure, Segment calls, ESP webhooks, docs.

``add_api(app)`` registers the routers and the state they share (``app.state.api``: the rate
limiter and the events hook, which a trigger engine replaces to evaluate arriving events).
"""

from __future__ import annotations

from fastapi import FastAPI

from newsletter.api import docs
from newsletter.api.auth import ApiState, RateLimiter
from newsletter.api.routes import events, segment
from newsletter.track.ingest import evaluate_triggers


def add_api(app: FastAPI) -> None:
    """Register the API routers and their shared state on ``app``."""
    app.state.api = ApiState(limiter=RateLimiter(), on_events_stored=evaluate_triggers)
    app.include_router(events.router)
    app.include_router(segment.router)
    app.include_router(docs.router)
