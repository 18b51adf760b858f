"""Helpers for API tests: make keys, send authenticated requests, read rows back."""

from __future__ import annotations

from typing import Any

from api_world import SENT_AT
from sqlalchemy import Engine
from sqlmodel import Session, select

from newsletter.models import Interaction, Item, Subscriber
from newsletter.store.apikeys import create_key


def make_key(engine: Engine, name: str = "web", scope: str = "events", **kw: Any) -> str:
    """A new API key (the secret) for tests."""
    limit = kw.get("rate_limit")
    return create_key(engine, name=name, scope=scope, rate_limit=limit, now=SENT_AT)[1]


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def interactions(engine: Engine) -> list[Interaction]:
    with Session(engine) as s:
        return list(s.exec(select(Interaction).order_by(Interaction.id)))  # type: ignore[arg-type]


def subscriber_by_key(engine: Engine, key: str) -> Subscriber | None:
    with Session(engine) as s:
        return s.exec(select(Subscriber).where(Subscriber.external_key == key)).first()


def item_by_key(engine: Engine, key: str) -> Item | None:
    with Session(engine) as s:
        return s.exec(select(Item).where(Item.external_key == key)).first()
