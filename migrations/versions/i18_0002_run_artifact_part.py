"""run artifact parts: a large artifact's content in consecutive pieces (PostgreSQL refuses a
single value over 1 GB; a fitted model for a million subscribers was 2 GB)

Revision ID: i18_artifact_part
Revises: i14_trigger_state
Create Date: 2026-12-03 11:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "i18_artifact_part"
down_revision = "i14_trigger_state"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "run_artifact_part",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("artifact_id", sa.Integer(), nullable=False),
        sa.Column("part", sa.Integer(), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["artifact_id"],
            ["run_artifact.id"],
            name=op.f("fk_run_artifact_part_artifact_id_run_artifact"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_run_artifact_part")),
        sa.UniqueConstraint("artifact_id", "part", name="uq_run_artifact_part"),
    )


def downgrade() -> None:
    op.drop_table("run_artifact_part")
