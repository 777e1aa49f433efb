"""Platform baseline: required extensions and the consumer inbox.

The inbox records which event each durable consumer has already applied, so a redelivered or
duplicated event is recognised and skipped (idempotent consumers).

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Created by the launcher as superuser; IF NOT EXISTS makes this a check for other setups.
    op.execute("CREATE EXTENSION IF NOT EXISTS vector")
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.create_table(
        "consumer_inbox",
        sa.Column("consumer", sa.Text(), nullable=False),
        sa.Column("event_id", sa.Text(), nullable=False),
        sa.Column("event_type", sa.Text(), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("consumer", "event_id"),
    )
    op.create_index("ix_consumer_inbox_processed_at", "consumer_inbox", ["processed_at"])


def downgrade() -> None:
    op.drop_index("ix_consumer_inbox_processed_at", table_name="consumer_inbox")
    op.drop_table("consumer_inbox")
