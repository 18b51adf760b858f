"""one unsubscribe event per message: a unique key, so concurrent one-click POSTs record one

Revision ID: i11_0002
Revises: i17_0002
Create Date: 2026-12-02 00:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "i11_0002"
down_revision = "i17_0002"
branch_labels = None
depends_on = None

UNSUBSCRIBE = sa.text("kind = 'unsubscribe'")


def upgrade() -> None:
    # keep the first unsubscribe event of each message (earlier races left duplicates)
    op.execute(
        "DELETE FROM event WHERE kind = 'unsubscribe' AND message_id IS NOT NULL AND id NOT IN"
        " (SELECT min(id) FROM event WHERE kind = 'unsubscribe' AND message_id IS NOT NULL"
        " GROUP BY message_id)"
    )
    op.create_index(
        "uq_event_unsubscribe",
        "event",
        ["message_id"],
        unique=True,
        sqlite_where=UNSUBSCRIBE,
        postgresql_where=UNSUBSCRIBE,
    )


def downgrade() -> None:
    op.drop_index("uq_event_unsubscribe", table_name="event")
