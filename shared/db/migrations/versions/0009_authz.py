"""Authorisation in the database: Casbin policies, document sensitivity, key clearance.

``casbin_rule`` is the table of ``casbin-async-sqlalchemy-adapter`` (ptype, v0..v5), seeded here
from ``infra/casbin/policy.csv`` so that a fresh stack behaves as the shipped file says; from then
on the table is the source and the admin API changes it. A unique index keeps two gateways that
add the same rule at once from storing it twice.

Documents get a ``sensitivity`` (public, internal, confidential, secret; default internal) on
``raw_docs`` and, kept equal, on ``processed_docs`` (which analysts may be granted directly). Keys
get a ``clearance``: existing admin keys (the bootstrap admin among them) get ``secret``, every
other key ``internal``, so everything they could read before they can still read.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from shared.identity.authz import policy_lines

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_LEVELS = "('public', 'internal', 'confidential', 'secret')"


def upgrade() -> None:
    rules = op.create_table(
        "casbin_rule",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("ptype", sa.String(255), nullable=False, comment="p (routes), p2 (data) or g (assignments)"),
        *(sa.Column(f"v{i}", sa.String(255), nullable=True) for i in range(6)),
    )
    op.execute(
        "CREATE UNIQUE INDEX casbin_rule_unique ON casbin_rule (ptype, v0, v1, v2, v3, v4, v5) NULLS NOT DISTINCT"
    )
    seed = []
    for line in policy_lines():
        values = line[1:7]
        seed.append({"ptype": line[0], **{f"v{i}": values[i] if i < len(values) else None for i in range(6)}})
    op.bulk_insert(rules, seed)

    op.add_column("api_keys", sa.Column("clearance", sa.Text(), nullable=False, server_default="internal"))
    op.execute("UPDATE api_keys SET clearance = 'secret' WHERE role = 'admin'")
    op.create_check_constraint("api_keys_clearance", "api_keys", f"clearance IN {_LEVELS}")
    for table in ("raw_docs", "processed_docs"):
        op.add_column(table, sa.Column("sensitivity", sa.Text(), nullable=False, server_default="internal"))
        op.create_check_constraint(f"{table}_sensitivity", table, f"sensitivity IN {_LEVELS}")


def downgrade() -> None:
    for table in ("processed_docs", "raw_docs"):
        op.drop_constraint(f"{table}_sensitivity", table)
        op.drop_column(table, "sensitivity")
    op.drop_constraint("api_keys_clearance", "api_keys")
    op.drop_column("api_keys", "clearance")
    op.drop_table("casbin_rule")
