"""run artifacts: a prepared run's parameters, members, fitted model and delivery pass

Revision ID: i12_run_artifact
Revises: i13_events_api
Create Date: 2026-11-27 00:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "i12_run_artifact"
down_revision = "i13_events_api"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "run_artifact",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("digest", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["run.id"],
            name=op.f("fk_run_artifact_run_id_run"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_run_artifact")),
        sa.UniqueConstraint("run_id", "kind", name="uq_run_artifact"),
    )


def downgrade() -> None:
    op.drop_table("run_artifact")
