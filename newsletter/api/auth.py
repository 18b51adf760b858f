"""API authentication: ``Authorization: Bearer <key>``, scopes, and a rate limit per key.

Keys are looked up by their SHA-256 (``store.apikeys``); a missing, unknown or revoked key is a
401, a key without the route's scope a 403, a key over its limit a 429 with ``Retry-After``.
The limit is a token bucket per key (``rate_limit`` requests per minute, else the configured
``api_rate_limit_per_minute``), kept in the process: each server process counts on its own.
The key never reaches a log: errors name the key's prefix at most.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from newsletter.api.deps import Tracking, tracking
from newsletter.models import ApiScope
from newsletter.store import apikeys
from newsletter.store.apikeys import ApiKeyInfo

bearer = HTTPBearer(auto_error=False, description="an API key from `newsletter apikey create`")
CHALLENGE = {"WWW-Authenticate": "Bearer"}


@dataclass
class RateLimiter:
    """Token buckets per key id: ``limit`` requests per minute, bursts up to ``limit``."""

    _buckets: dict[int, tuple[float, datetime]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, key_id: int, *, limit: int, now: datetime) -> float | None:
        """Spend one request; None when allowed, else the seconds until one is available."""
        rate = limit / 60.0
        with self._lock:
            tokens, last = self._buckets.get(key_id, (float(limit), now))
            elapsed = max(0.0, (now - last).total_seconds())
            tokens = min(float(limit), tokens + elapsed * rate)
            if tokens < 1.0:
                self._buckets[key_id] = (tokens, now)
                return (1.0 - tokens) / rate
            self._buckets[key_id] = (tokens - 1.0, now)
            return None


@dataclass
class ApiState:
    """What the API routes share: the rate limiter and the events hook (see track.ingest)."""

    limiter: RateLimiter
    on_events_stored: Callable[..., None]


def api_state(request: Request) -> ApiState:
    """The app's ApiState (FastAPI dependency)."""
    state: ApiState = request.app.state.api
    return state


def _authenticate(
    credentials: HTTPAuthorizationCredentials | None, t: Tracking, api: ApiState, scope: str
) -> ApiKeyInfo:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(401, "send an API key as 'Authorization: Bearer <key>'", CHALLENGE)
    key = apikeys.key_by_secret(t.engine, key=credentials.credentials.strip())
    if key is None:
        raise HTTPException(401, "the API key is unknown or revoked: create one", CHALLENGE)
    if scope == ApiScope.admin and key.scope != ApiScope.admin:
        raise HTTPException(403, f"key {key.prefix}… has scope {key.scope!r}; this needs 'admin'")
    now = t.now()
    limit = key.rate_limit or t.settings.api_rate_limit_per_minute
    wait = api.limiter.take(key.id, limit=limit, now=now)
    if wait is not None:
        retry = str(max(1, math.ceil(wait)))
        detail = f"key {key.prefix}… is over its limit of {limit} requests per minute"
        raise HTTPException(429, detail, {"Retry-After": retry})
    apikeys.touch(t.engine, key=key, now=now)
    return key


def require(scope: str) -> Callable[..., ApiKeyInfo]:
    """A dependency that admits a live key with ``scope`` (admin keys may do everything)."""

    def dependency(
        credentials: HTTPAuthorizationCredentials | None = Depends(bearer),
        t: Tracking = Depends(tracking),
        api: ApiState = Depends(api_state),
    ) -> ApiKeyInfo:
        return _authenticate(credentials, t, api, scope)

    return dependency


events_key = require(ApiScope.events)
admin_key = require(ApiScope.admin)
