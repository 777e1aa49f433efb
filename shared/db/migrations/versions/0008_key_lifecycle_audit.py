"""API key rotation (the replacement and when it happened) and the append-only ``audit_log``.

Rotation keeps the old row and shortens its ``expires_at`` to the end of the grace period, so
verification needs no new rule; ``rotated_at`` and ``replaced_by`` say why it expired. The audit
table refuses UPDATE and DELETE with a trigger: entries are only ever appended.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("api_keys", sa.Column("rotated_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("api_keys", sa.Column("replaced_by", sa.Uuid(), sa.ForeignKey("api_keys.id"), nullable=True))
    op.create_index("api_keys_tenant", "api_keys", ["tenant"])
    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event", sa.Text(), nullable=False, comment="access, key.created, key.rotated or key.revoked"),
        sa.Column("principal", sa.Text(), nullable=True, comment="prefix of the acting key (never the key)"),
        sa.Column("tenant", sa.Text(), nullable=True),
        sa.Column("role", sa.Text(), nullable=True),
        sa.Column("method", sa.Text(), nullable=True),
        sa.Column("route", sa.Text(), nullable=True, comment="the route template, not the raw path"),
        sa.Column("decision", sa.Text(), nullable=False, comment="allow or deny"),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=True, comment="prefix of the key a key event is about"),
        sa.Column("request_id", sa.Text(), nullable=True),
        sa.Column("trace_id", sa.Text(), nullable=True),
    )
    op.create_index("audit_log_at", "audit_log", ["at"])
    op.create_index("audit_log_principal", "audit_log", ["principal", "at"])
    op.execute(
        """
        CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'audit_log is append-only';
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log "
        "FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()"
    )


def downgrade() -> None:
    op.drop_table("audit_log")
    op.execute("DROP FUNCTION audit_log_append_only()")
    op.drop_index("api_keys_tenant", "api_keys")
    op.drop_column("api_keys", "replaced_by")
    op.drop_column("api_keys", "rotated_at")
