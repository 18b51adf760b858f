"""Web UI accounts as SQL: users, server-side sessions and failed sign-ins (for the rate limit).

Sessions are stored by the SHA-256 of the cookie value, so a leaked table cannot be replayed
as cookies. Failed sign-ins are rows counted per address and per client IP over a window.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, delete, func, insert, or_, select, update

from newsletter.models import AdminUser
from newsletter.tables import admin_session_table, admin_user_table, login_attempt_table

U = admin_user_table.c
SE = admin_session_table.c
LA = login_attempt_table.c


@dataclass(frozen=True)
class SessionRow:
    """A live session joined with its user."""

    session_id: str
    csrf_token: str
    created_at: datetime
    expires_at: datetime
    last_seen_at: datetime
    user_id: int
    email: str
    role: str


def find_user(engine: Engine, *, email: str) -> AdminUser | None:
    """The user with this address (compared case-insensitively), or None."""
    with engine.connect() as c:
        row = c.execute(select(AdminUser).where(func.lower(U.email) == email.lower())).first()
    return AdminUser.model_validate(row._mapping) if row else None


def upsert_user(
    engine: Engine, *, email: str, password_hash: str, role: str, now: datetime
) -> tuple[AdminUser, bool]:
    """Create the user, or set its password and role; (user, created)."""
    existing = find_user(engine, email=email)
    with engine.begin() as c:
        if existing is None:
            c.execute(
                insert(admin_user_table).values(
                    email=email, password_hash=password_hash, role=role, active=True, created_at=now
                )
            )
        else:
            c.execute(
                update(admin_user_table)
                .where(U.id == existing.id)
                .values(password_hash=password_hash, role=role, active=True)
            )
    found = find_user(engine, email=email)
    assert found is not None
    return found, existing is None


def list_users(engine: Engine) -> list[AdminUser]:
    """Every user, by address."""
    with engine.connect() as c:
        rows = c.execute(select(AdminUser).order_by(U.email)).all()
    return [AdminUser.model_validate(r._mapping) for r in rows]


def signed_in(engine: Engine, *, user_id: int, password_hash: str | None, now: datetime) -> None:
    """Stamp a successful sign-in (and store a re-hashed password when parameters changed)."""
    values: dict[str, object] = {"last_login_at": now}
    if password_hash:
        values["password_hash"] = password_hash
    with engine.begin() as c:
        c.execute(update(admin_user_table).where(U.id == user_id).values(**values))


def create_session(
    engine: Engine,
    *,
    session_id: str,
    user_id: int,
    csrf_token: str,
    now: datetime,
    expires_at: datetime,
    user_agent: str | None,
) -> None:
    """Store a new session (and drop the expired ones)."""
    with engine.begin() as c:
        c.execute(delete(admin_session_table).where(SE.expires_at < now))
        c.execute(
            insert(admin_session_table).values(
                id=session_id,
                user_id=user_id,
                csrf_token=csrf_token,
                created_at=now,
                expires_at=expires_at,
                last_seen_at=now,
                user_agent=(user_agent or "")[:300] or None,
            )
        )


def find_session(engine: Engine, *, session_id: str, now: datetime) -> SessionRow | None:
    """The unexpired session of an active user, or None."""
    query = (
        select(
            SE.id,
            SE.csrf_token,
            SE.created_at,
            SE.expires_at,
            SE.last_seen_at,
            U.id,
            U.email,
            U.role,
        )
        .join(admin_user_table, U.id == SE.user_id)
        .where(SE.id == session_id, SE.expires_at > now, U.active.is_(True))
    )
    with engine.connect() as c:
        row = c.execute(query).first()
    return SessionRow(*row) if row else None


def touch_session(engine: Engine, *, session_id: str, now: datetime, expires_at: datetime) -> None:
    """Slide a session's idle expiry forward."""
    with engine.begin() as c:
        c.execute(
            update(admin_session_table)
            .where(SE.id == session_id)
            .values(last_seen_at=now, expires_at=expires_at)
        )


def delete_session(engine: Engine, *, session_id: str) -> None:
    """Forget a session (sign out)."""
    with engine.begin() as c:
        c.execute(delete(admin_session_table).where(SE.id == session_id))


def record_failed_login(engine: Engine, *, email: str, ip: str | None, now: datetime) -> None:
    """Count one failed sign-in for this address and IP."""
    with engine.begin() as c:
        c.execute(insert(login_attempt_table).values(email=email.lower(), ip=ip, occurred_at=now))


def failed_logins(
    engine: Engine, *, email: str, ip: str | None, since: datetime
) -> tuple[int, int, datetime | None]:
    """Failed sign-ins since `since`: for this address, from this IP, and the oldest of them."""
    recent = LA.occurred_at >= since
    with engine.connect() as c:
        by_email = c.execute(
            select(func.count()).where(recent, LA.email == email.lower())
        ).scalar_one()
        by_ip = c.execute(select(func.count()).where(recent, LA.ip == ip)).scalar_one() if ip else 0
        oldest = c.execute(
            select(func.min(LA.occurred_at)).where(
                recent, or_(LA.email == email.lower(), LA.ip == ip)
            )
        ).scalar()
    return int(by_email), int(by_ip), oldest


def clear_failed_logins(engine: Engine, *, email: str, before: datetime) -> None:
    """Forget an address's failed sign-ins once it signed in (and every row older than
    `before`, which no window counts any more)."""
    with engine.begin() as c:
        c.execute(
            delete(login_attempt_table).where(
                or_(LA.email == email.lower(), LA.occurred_at < before)
            )
        )
