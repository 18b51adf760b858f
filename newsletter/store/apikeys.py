"""API keys at rest: a name, a scope, a display prefix and the SHA-256 of the key, never the key.

The key itself (``nl_`` + 43 URL-safe random characters, 256 bits) is made here and returned
once by ``create_key``; requests are matched by the hash of the presented key. Revoked keys
stay listed (with ``revoked_at``) so that the audit trail keeps their name.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from newsletter.models import ApiScope
from newsletter.tables import api_key_table

K = api_key_table.c
TABLE = api_key_table
KEY_PREFIX = "nl_"
PREFIX_CHARS = 10  # "nl_" + 7 characters: enough to tell keys apart in a list
TOUCH_EVERY = timedelta(seconds=60)  # last_used_at is written at most once a minute per key


class ApiKeyError(ValueError):
    """A key name or scope is unusable; the message names it and the fix."""


@dataclass(frozen=True)
class ApiKeyInfo:
    """What may be shown about a key (everything but the key)."""

    id: int
    name: str
    prefix: str
    scope: str
    rate_limit: int | None
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


def hash_key(key: str) -> str:
    """The stored fingerprint of a key (SHA-256 hex; keys are random, so no salt is needed)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _info(row: object) -> ApiKeyInfo:
    return ApiKeyInfo(
        id=int(row.id),  # type: ignore[attr-defined]
        name=row.name,  # type: ignore[attr-defined]
        prefix=row.prefix,  # type: ignore[attr-defined]
        scope=row.scope,  # type: ignore[attr-defined]
        rate_limit=row.rate_limit,  # type: ignore[attr-defined]
        created_at=row.created_at,  # type: ignore[attr-defined]
        last_used_at=row.last_used_at,  # type: ignore[attr-defined]
        revoked_at=row.revoked_at,  # type: ignore[attr-defined]
    )


def create_key(
    engine: Engine, *, name: str, scope: str, rate_limit: int | None, now: datetime
) -> tuple[ApiKeyInfo, str]:
    """Make a new key; returns its record and the key itself (shown once, stored hashed)."""
    name = name.strip()
    if not name or len(name) > 100:
        raise ApiKeyError(f"key name {name!r} must be 1 to 100 characters")
    if scope not in tuple(ApiScope):
        raise ApiKeyError(f"unknown scope {scope!r}: use one of {', '.join(ApiScope)}")
    if rate_limit is not None and rate_limit < 1:
        raise ApiKeyError(f"rate limit {rate_limit} must be at least 1 request per minute")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    values = {
        "name": name,
        "prefix": key[:PREFIX_CHARS],
        "key_hash": hash_key(key),
        "scope": scope,
        "rate_limit": rate_limit,
        "created_at": now,
    }
    try:
        with engine.begin() as c:
            c.execute(insert(TABLE).values(**values))
    except IntegrityError as exc:
        raise ApiKeyError(f"a key named {name!r} already exists: pick another name") from exc
    found = key_by_name(engine, name=name)
    assert found is not None
    return found, key


def key_by_name(engine: Engine, *, name: str) -> ApiKeyInfo | None:
    """The key called ``name`` (revoked or not), or None."""
    with engine.connect() as c:
        row = c.execute(select(TABLE).where(K.name == name)).first()
    return None if row is None else _info(row)


def key_by_secret(engine: Engine, *, key: str) -> ApiKeyInfo | None:
    """The live (not revoked) key whose hash matches ``key``, or None."""
    query = select(TABLE).where(K.key_hash == hash_key(key), K.revoked_at.is_(None))
    with engine.connect() as c:
        row = c.execute(query).first()
    return None if row is None else _info(row)


def touch(engine: Engine, *, key: ApiKeyInfo, now: datetime) -> bool:
    """Record that the key was used now (at most once per minute); True when written."""
    if key.last_used_at is not None and now - key.last_used_at < TOUCH_EVERY:
        return False
    with engine.begin() as c:
        c.execute(update(TABLE).where(K.id == key.id).values(last_used_at=now))
    return True


def revoke_key(engine: Engine, *, name: str, now: datetime) -> bool:
    """Revoke the key called ``name``; False when there is no live key of that name."""
    with engine.begin() as c:
        done = c.execute(
            update(TABLE).where(K.name == name, K.revoked_at.is_(None)).values(revoked_at=now)
        ).rowcount
    return bool(done)


def list_keys(engine: Engine) -> list[ApiKeyInfo]:
    """Every key, oldest first (revoked ones included)."""
    with engine.connect() as c:
        return [_info(r) for r in c.execute(select(TABLE).order_by(K.id))]
