"""Alembic environment: runs against the engine handed in by newsletter.db (or a URL)."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

import newsletter.models  # noqa: F401  (registers the tables)
from newsletter.db import make_engine

config = context.config
target_metadata = SQLModel.metadata


def run_migrations_online() -> None:
    engine = config.attributes.get("engine")
    if engine is None:
        engine = make_engine(config.get_main_option("sqlalchemy.url") or "sqlite:///newsletter.db")
    with engine.begin() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        context.run_migrations()


run_migrations_online()
