"""Migrations build the schema the models describe, and downgrade cleanly, on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect
from sqlmodel import SQLModel

import newsletter.models  # noqa: F401
from newsletter.db import current_revision, downgrade, head_revision, upgrade

EXPECTED_TABLES = {
    "subscriber",
    "item",
    "item_topic",
    "interaction",
    "segment",
    "campaign",
    "template",
    "template_version",
    "run",
    "message",
    "slot",
    "event",
    "assignment",
    "suppression",
    "sync_state",
    "api_key",
    "run_artifact",
}


def test_upgrade_matches_models_then_downgrade_removes_everything(empty_engine: Engine) -> None:
    assert current_revision(empty_engine) is None
    upgrade(empty_engine)
    assert current_revision(empty_engine) == head_revision(empty_engine)
    assert EXPECTED_TABLES <= set(inspect(empty_engine).get_table_names())
    with empty_engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, SQLModel.metadata) == []
    downgrade(empty_engine, "base")
    assert current_revision(empty_engine) is None
    assert set(inspect(empty_engine).get_table_names()) <= {"alembic_version"}
    upgrade(empty_engine)  # and back up again: the round trip is clean
    assert EXPECTED_TABLES <= set(inspect(empty_engine).get_table_names())


def test_idempotency_constraints_exist(engine: Engine) -> None:
    inspector = inspect(engine)
    run_uniques = {tuple(u["column_names"]) for u in inspector.get_unique_constraints("run")}
    message_uniques = {
        tuple(u["column_names"]) for u in inspector.get_unique_constraints("message")
    }
    assert ("campaign_id", "scheduled_for") in run_uniques
    assert ("run_id", "subscriber_id") in message_uniques
    indexes = {tuple(i["column_names"]) for i in inspector.get_indexes("interaction")}
    assert ("subscriber_id", "occurred_at") in indexes and ("item_id",) in indexes
