"""The audit log becomes a hash chain: ``prev_hash`` and ``hash`` on every row.

Rows written before this revision are chained here in id order (the append-only trigger is lifted
for the length of this transaction only), so ``hearth audit verify`` covers the whole log.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from shared.identity.audit import GENESIS, entry_digest

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_COLUMNS = "id, at, event, principal, tenant, role, method, route, decision, reason, subject, request_id, trace_id"


def upgrade() -> None:
    op.add_column(
        "audit_log", sa.Column("prev_hash", sa.LargeBinary(), nullable=True, comment="hash of the entry before")
    )
    op.add_column("audit_log", sa.Column("hash", sa.LargeBinary(), nullable=True, comment="sha256(prev_hash, entry)"))
    conn = op.get_bind()
    op.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only")
    prev = GENESIS
    for row in conn.execute(sa.text(f"SELECT {_COLUMNS} FROM audit_log ORDER BY id")).mappings().all():  # noqa: S608 - fixed columns
        digest = entry_digest(prev, row)
        conn.execute(
            sa.text("UPDATE audit_log SET prev_hash = :prev, hash = :hash WHERE id = :id"),
            {"prev": prev, "hash": digest, "id": row["id"]},
        )
        prev = digest
    op.execute("ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only")
    op.alter_column("audit_log", "prev_hash", nullable=False)
    op.alter_column("audit_log", "hash", nullable=False)


def downgrade() -> None:
    op.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only")
    op.drop_column("audit_log", "hash")
    op.drop_column("audit_log", "prev_hash")
    op.execute("ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only")
