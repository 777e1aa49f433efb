"""Document lifecycle: storage tier, last access, retention, legal hold, purge tombstones.

* ``tier``: ``hot`` (the files are in the JetStream bucket), ``cold`` (in the cold tier,
  ``shared.coldstore``) or ``purged``; ``tiered_at`` and ``cold_bytes`` (what the cold copies
  take on disk) describe the last move.
* ``last_accessed_at``: when a file of the document was last read (idle = not read since the
  tiering policy's ``idle``; until the first read, the last update counts).
* ``retention_class`` / ``retain_until``: the class whose retention rule applies and when the
  document is due for purging (computed by the governance service from the policy file; NULL:
  kept forever or not assessed yet).
* ``legal_hold`` with ``_reason``, ``_by``, ``_at``: a held document is never purged.
* ``purged_at``: the row stays as a tombstone (id, tenant, class, times, size, SHA-256) so the
  audit trail keeps meaning; content, files and derived rows are gone.

The route policies added to ``infra/casbin/policy.csv`` with this revision are inserted into
``casbin_rule`` for stacks seeded before it (a fresh stack got them from the file in 0009).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

_POLICIES = (
    ("p", "user", "*", "/v1/documents/:id/file", "GET"),
    ("p", "tenant_admin", "*", "/v1/documents/:id/legal-hold", "PUT|DELETE"),
    ("p", "tenant_admin", "*", "/v1/governance/lifecycle", "GET"),
)


def upgrade() -> None:
    columns = [
        sa.Column("tier", sa.Text(), nullable=False, server_default="hot", comment="hot | cold | purged"),
        sa.Column("tiered_at", sa.DateTime(timezone=True), nullable=True, comment="Last move between tiers"),
        sa.Column("cold_bytes", sa.BigInteger(), nullable=True, comment="Bytes its cold copies take"),
        sa.Column("last_accessed_at", sa.DateTime(timezone=True), nullable=True, comment="Last read of its files"),
        sa.Column("retention_class", sa.Text(), nullable=True, comment="Class whose retention rule applies"),
        sa.Column("retain_until", sa.DateTime(timezone=True), nullable=True, comment="Due for purging then"),
        sa.Column("legal_hold", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("legal_hold_reason", sa.Text(), nullable=True),
        sa.Column("legal_hold_by", sa.Text(), nullable=True),
        sa.Column("legal_hold_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("purged_at", sa.DateTime(timezone=True), nullable=True, comment="Tombstone: content purged"),
    ]
    for column in columns:
        op.add_column("raw_docs", column)
    op.create_check_constraint("raw_docs_tier", "raw_docs", "tier IN ('hot', 'cold', 'purged')")
    op.create_index("raw_docs_tier", "raw_docs", ["tenant", "tier"])
    op.create_index(
        "raw_docs_due",
        "raw_docs",
        ["retain_until"],
        postgresql_where=sa.text("purged_at IS NULL AND NOT legal_hold"),
    )
    for ptype, *values in _POLICIES:
        op.execute(
            sa.text(
                "INSERT INTO casbin_rule (ptype, v0, v1, v2, v3) VALUES (:ptype, :v0, :v1, :v2, :v3) "
                "ON CONFLICT DO NOTHING"
            ).bindparams(ptype=ptype, v0=values[0], v1=values[1], v2=values[2], v3=values[3])
        )


def downgrade() -> None:
    for ptype, *values in _POLICIES:
        op.execute(
            sa.text(
                "DELETE FROM casbin_rule WHERE ptype = :ptype AND v0 = :v0 AND v1 = :v1 AND v2 = :v2 AND v3 = :v3"
            ).bindparams(ptype=ptype, v0=values[0], v1=values[1], v2=values[2], v3=values[3])
        )
    op.drop_index("raw_docs_due", table_name="raw_docs")
    op.drop_index("raw_docs_tier", table_name="raw_docs")
    op.drop_constraint("raw_docs_tier", "raw_docs")
    for name in (
        "purged_at",
        "legal_hold_at",
        "legal_hold_by",
        "legal_hold_reason",
        "legal_hold",
        "retain_until",
        "retention_class",
        "last_accessed_at",
        "cold_bytes",
        "tiered_at",
        "tier",
    ):
        op.drop_column("raw_docs", name)
