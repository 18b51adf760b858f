"""subscriber field ownership: status_changed_at, opted_in_at, preferences_set_at

Revision ID: i10_0002
Revises: 0001
Create Date: 2026-12-01 09:00:00

A sync, an import or an upsert must never undo what the subscriber said. These columns let
the store tell who set what: when the status last changed (an opt-in older than that does not
re-activate), the latest opt-in a source reported, and when the subscriber saved their
preferences (from then on frequency and topics are theirs). Existing non-active subscribers
get ``status_changed_at = updated_at``, an upper bound of when they left.
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "i10_0002"
down_revision = "0001"
branch_labels = None
depends_on = None

COLUMNS = ("status_changed_at", "opted_in_at", "preferences_set_at")


def upgrade() -> None:
    with op.batch_alter_table("subscriber", schema=None) as batch_op:
        for name in COLUMNS:
            batch_op.add_column(
                sa.Column(name, sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True)
            )
    op.execute(
        "UPDATE subscriber SET status_changed_at = updated_at WHERE status <> 'active'"
    )


def downgrade() -> None:
    with op.batch_alter_table("subscriber", schema=None) as batch_op:
        for name in reversed(COLUMNS):
            batch_op.drop_column(name)
