"""Document text at rest: sealed columns, a per-document data key and a blind (keyed-hash) search index.

* ``raw_docs.data_key``: the document's data key, wrapped by the tenant's transit key (a
  ``shared.crypto.columns.KeyHeader`` JSON: key name, version, wrapped key). Every sealed value of
  the document (its inline text, its processed content, its chunks) is AES-256-GCM under it.
* ``raw_docs.inline_sealed``, ``processed_docs.sealed`` (text, pages and entities as one sealed
  JSON value) and ``doc_chunks.sealed``: the ciphertext. The plaintext columns stay for rows
  written before this revision (they read as before) and are written empty from now on.
* ``processed_docs.entity_terms``: keyed hashes of ``field:key=value`` of the normalised entities
  (the entity filter), ``valid_periods``: the contracts' validity ranges (the ``valid_on`` filter;
  dates are kept in the clear, see README "Encryption at rest").
* ``tenant_index_keys``: per tenant, the wrapped key of its blind index (HMAC-SHA256 of terms in
  ``doc_chunks.terms`` and of the learned classifier's terms).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "raw_docs",
        sa.Column("data_key", sa.Text(), nullable=True, comment="The document's data key, wrapped (KeyHeader JSON)"),
    )
    op.add_column(
        "raw_docs", sa.Column("inline_sealed", sa.LargeBinary(), nullable=True, comment="inline_text, sealed")
    )
    op.add_column(
        "processed_docs",
        sa.Column("sealed", sa.LargeBinary(), nullable=True, comment="text, pages and entities, sealed (JSON)"),
    )
    op.add_column(
        "processed_docs",
        sa.Column(
            "entity_terms",
            postgresql.ARRAY(sa.Text()),
            nullable=False,
            server_default=sa.text("'{}'"),
            comment="Keyed hashes of field:key=value of the normalised entities",
        ),
    )
    op.add_column(
        "processed_docs",
        sa.Column(
            "valid_periods",
            postgresql.ARRAY(postgresql.DATERANGE()),
            nullable=False,
            server_default=sa.text("'{}'"),
            comment="valid_period entities as [start, end] ranges",
        ),
    )
    op.create_index("processed_docs_entity_terms", "processed_docs", ["entity_terms"], postgresql_using="gin")
    op.add_column(
        "doc_chunks", sa.Column("sealed", sa.LargeBinary(), nullable=True, comment="The chunk's text, sealed")
    )
    op.create_table(
        "tenant_index_keys",
        sa.Column("tenant", sa.Text(), primary_key=True),
        sa.Column(
            "data_key", sa.Text(), nullable=False, comment="The blind index's HMAC key, wrapped (KeyHeader JSON)"
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    )
    # Rows written before: their valid_on filter keeps working from their plaintext entities.
    op.execute(
        "UPDATE processed_docs p SET valid_periods = coalesce((SELECT array_agg(daterange("
        "(v->'normalized'->>'start')::date, (v->'normalized'->>'end')::date, '[]')) "
        "FROM jsonb_array_elements(p.entities->'valid_period') v "
        "WHERE v->'normalized'->>'start' IS NOT NULL AND v->'normalized'->>'end' IS NOT NULL), '{}')"
    )


def downgrade() -> None:
    op.drop_table("tenant_index_keys")
    op.drop_column("doc_chunks", "sealed")
    op.drop_index("processed_docs_entity_terms", table_name="processed_docs")
    op.drop_column("processed_docs", "valid_periods")
    op.drop_column("processed_docs", "entity_terms")
    op.drop_column("processed_docs", "sealed")
    op.drop_column("raw_docs", "inline_sealed")
    op.drop_column("raw_docs", "data_key")
