"""Test data for the web UI: a small publisher, a planned and delivered 'weekly' run, users.

``build_ui_world(engine)`` seeds the synthetic publisher of the delivery tests, plans the
'weekly' digest (popularity slots: fast), delivers it to a memory transport, and adds one user
per role, all with ``PASSWORD``. ``signed_in(client, email)`` signs a TestClient in and
returns the session's CSRF token.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine

sys.path.insert(0, str(Path(__file__).parents[1] / "deliver"))
from dispatch_data import DISPATCH_NOW, plan_dispatch_run, seed_dispatch_world

from newsletter.admin.accounts import add_user
from newsletter.config import Settings
from newsletter.deliver import MemoryTransport
from newsletter.deliver.dispatch import dispatch_run

PASSWORD = "correct horse battery staple"
ADMIN, EDITOR, VIEWER = "admin@example.com", "editor@example.com", "viewer@example.com"
NOW = DISPATCH_NOW
SECRET = "ui-test-secret-0123456789abcdef"
BASE = "https://news.example.com"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
_LOGIN = re.compile(r'name="login_token" value="([^"]+)"')


class Clock:
    """A settable clock: tests move time, the app reads it."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class UiWorld:
    run_id: int
    subscriber_id: int
    email: str


def build_ui_world(engine: Engine, *, subscribers: int = 24) -> UiWorld:
    """Seed data, plan and deliver one run, add an admin, an editor and a viewer."""
    from sqlmodel import Session, select

    from newsletter.models import Message, Subscriber

    seed_dispatch_world(engine, subscribers=subscribers)
    run_id = plan_dispatch_run(engine)
    dispatch_run(engine, run_id=run_id, transport=MemoryTransport(), settings=Settings(), now=NOW)
    for email, role in ((ADMIN, "admin"), (EDITOR, "editor"), (VIEWER, "viewer")):
        add_user(engine, email=email, password=PASSWORD, role=role, now=NOW)
    with Session(engine) as s:
        sid = s.exec(
            select(Message.subscriber_id).where(Message.run_id == run_id, Message.status == "sent")
        ).first()
        person = s.get(Subscriber, sid)
        assert person is not None and person.id is not None
        return UiWorld(run_id, person.id, person.email)


def csrf_of(html: str) -> str:
    """The CSRF token a page's forms carry."""
    found = _CSRF.search(html)
    assert found, "no CSRF token on the page"
    return found.group(1)


def signed_in(client, email: str, password: str = PASSWORD) -> str:
    """Sign `client` in as `email`; the session's CSRF token."""
    form = client.get("/admin/login")
    token = _LOGIN.search(form.text).group(1)  # type: ignore[union-attr]
    done = client.post(
        "/admin/login",
        data={"login_token": token, "email": email, "password": password, "next": ""},
    )
    assert done.status_code == 303, done.text
    return csrf_of(client.get("/admin/templates").text)
