"""Row-level security on the tenant-owned tables, forced for the service role too.

Policy ``hearth_tenant_isolation`` (for the service role): a row is visible, and may be written,
when the transaction's ``hearth.tenant`` is its tenant, ``*``, or unset. The gateway sets it per
request to the verified key's tenant (``shared.db.tenancy``); non-request work leaves it unset.
Analysts' roles (``hearth db role``) get policies of their own, limited to their tenants.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

TABLES = (
    "api_keys",
    "workflow_records",
    "raw_docs",
    "processed_docs",
    "doc_chunks",
    "doc_corrections",
    "doc_label_model",
)
_VISIBLE = (
    "(coalesce(current_setting('hearth.tenant', true), '') IN ('', '*') "
    "OR tenant = current_setting('hearth.tenant', true))"
)


def upgrade() -> None:
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")  # the owner (the service role) too
        op.execute(
            f"CREATE POLICY hearth_tenant_isolation ON {table} TO CURRENT_USER USING {_VISIBLE} WITH CHECK {_VISIBLE}"
        )


def downgrade() -> None:
    for table in TABLES:
        op.execute(f"DROP POLICY IF EXISTS hearth_tenant_isolation ON {table}")
        op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
