"""Web UI accounts: argon2id passwords, server-side sessions with a CSRF token, rate limits.

    add_user(engine, *, email, password, role, now) -> (AdminUser, created)
    sign_in(engine, *, email, password, ip, user_agent, now) -> NewSession   # LoginRefused
    session_for(engine, *, token, now) -> SignedIn | None
    sign_out(engine, *, token)
    allowed(role, needed) -> bool     # viewer < editor < admin

The cookie holds a random token; the database holds only its SHA-256. A session ends after
``IDLE`` without a request or ``LIFETIME`` after sign-in. After ``MAX_FAILS_PER_EMAIL`` failed
sign-ins for an address (or ``MAX_FAILS_PER_IP`` from one IP) within ``WINDOW``, sign-in is
refused until the window has passed, even with the right password.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from newsletter.db import Engine
from newsletter.models import AdminUser, Role
from newsletter.store import users as store

IDLE = timedelta(hours=2)
LIFETIME = timedelta(hours=12)
TOUCH_EVERY = timedelta(minutes=1)
WINDOW = timedelta(minutes=15)
MAX_FAILS_PER_EMAIL = 5
MAX_FAILS_PER_IP = 20
MIN_PASSWORD = 10
RANK = {Role.viewer: 0, Role.editor: 1, Role.admin: 2}
_HASHER = PasswordHasher()  # argon2id with the library's current recommended parameters
_DUMMY_HASH = _HASHER.hash("not-a-real-password-used-for-timing")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class AccountError(ValueError):
    """A user cannot be added as given; the message names the input and the fix."""


class LoginRefused(ValueError):
    """Sign-in refused: wrong address or password, or too many failed attempts."""

    def __init__(self, message: str, *, limited: bool = False) -> None:
        super().__init__(message)
        self.limited = limited


@dataclass(frozen=True)
class SignedIn:
    """Who is asking: the user and the CSRF token every form of this session carries."""

    user_id: int
    email: str
    role: str
    csrf_token: str


@dataclass(frozen=True)
class NewSession:
    """A session just started: the cookie value and the signed-in user."""

    token: str
    user: SignedIn


def session_key(token: str) -> str:
    """What the database stores for a cookie value (its SHA-256, hex)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def allowed(role: str, needed: Role) -> bool:
    """Whether a role may do what needs `needed` (unknown roles may do nothing)."""
    return role in RANK and RANK[Role(role)] >= RANK[needed]


def add_user(
    engine: Engine, *, email: str, password: str, role: str, now: datetime
) -> tuple[AdminUser, bool]:
    """Create a user or reset its password and role; (user, created)."""
    email = email.strip()
    if not _EMAIL.match(email):
        raise AccountError(f"{email!r} is not an email address (e.g. ada@example.com)")
    if role not in RANK:
        raise AccountError(f"role {role!r}: use one of {', '.join(r.value for r in Role)}")
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"the password needs at least {MIN_PASSWORD} characters")
    return store.upsert_user(
        engine, email=email, password_hash=_HASHER.hash(password), role=role, now=now
    )


def _check_rate(engine: Engine, *, email: str, ip: str | None, now: datetime) -> None:
    by_email, by_ip, oldest = store.failed_logins(engine, email=email, ip=ip, since=now - WINDOW)
    if by_email >= MAX_FAILS_PER_EMAIL or by_ip >= MAX_FAILS_PER_IP:
        wait = WINDOW - (now - oldest) if oldest else WINDOW
        minutes = max(1, int(wait.total_seconds() // 60) + 1)
        raise LoginRefused(
            f"Too many failed sign-ins. Try again in {minutes} minutes.", limited=True
        )


def _password_ok(user: AdminUser | None, password: str) -> bool:
    try:
        _HASHER.verify(user.password_hash if user else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return False
    return user is not None and user.active


def sign_in(
    engine: Engine,
    *,
    email: str,
    password: str,
    ip: str | None,
    user_agent: str | None,
    now: datetime,
) -> NewSession:
    """Check the password (rate-limited) and start a session; LoginRefused otherwise."""
    email = email.strip()
    _check_rate(engine, email=email, ip=ip, now=now)
    user = store.find_user(engine, email=email) if email else None
    if not _password_ok(user, password) or user is None or user.id is None:
        store.record_failed_login(engine, email=email, ip=ip, now=now)
        raise LoginRefused("Wrong email address or password.")
    rehash = _HASHER.hash(password) if _HASHER.check_needs_rehash(user.password_hash) else None
    store.signed_in(engine, user_id=user.id, password_hash=rehash, now=now)
    store.clear_failed_logins(engine, email=email, before=now - WINDOW)
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    store.create_session(
        engine,
        session_id=session_key(token),
        user_id=user.id,
        csrf_token=csrf,
        now=now,
        expires_at=now + IDLE,
        user_agent=user_agent,
    )
    return NewSession(token, SignedIn(user.id, user.email, user.role, csrf))


def session_for(engine: Engine, *, token: str | None, now: datetime) -> SignedIn | None:
    """The signed-in user of a cookie value, or None (no, unknown or expired session)."""
    if not token:
        return None
    key = session_key(token)
    row = store.find_session(engine, session_id=key, now=now)
    if row is None:
        return None
    if now - row.last_seen_at >= TOUCH_EVERY:
        expires = min(now + IDLE, row.created_at + LIFETIME)
        store.touch_session(engine, session_id=key, now=now, expires_at=expires)
    return SignedIn(row.user_id, row.email, row.role, row.csrf_token)


def sign_out(engine: Engine, *, token: str | None) -> None:
    """End the session of a cookie value (nothing happens for an unknown one)."""
    if token:
        store.delete_session(engine, session_id=session_key(token))
