"""Documents: what was submitted (raw_docs), what processing made of it (processed_docs), corrections.

The seed's own table names. A document is keyed by its id; a publisher's (source_system,
external_id) is unique per tenant, so a re-sent document maps to the one already held.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "raw_docs",
        sa.Column("id", sa.Text(), primary_key=True),
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("source_system", sa.Text(), nullable=False),
        sa.Column("external_id", sa.Text(), nullable=True),
        sa.Column("filename", sa.Text(), nullable=True),
        sa.Column("content_type", sa.Text(), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=True),
        sa.Column("sha256", sa.Text(), nullable=True),
        sa.Column("blob", postgresql.JSONB(), nullable=True, comment="BlobRef of the original file"),
        sa.Column("inline_text", sa.Text(), nullable=True, comment="Text submitted inline instead of a file"),
        sa.Column("metadata", postgresql.JSONB(), nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("status", sa.Text(), nullable=False, comment="processing | processed | failed"),
        sa.Column("workflow", sa.Text(), nullable=False),
        sa.Column("run_id", sa.Text(), nullable=True),
        sa.Column("error", postgresql.JSONB(), nullable=True),
        sa.Column("submitted_by", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    )
    op.create_index(
        "raw_docs_external",
        "raw_docs",
        ["tenant", "source_system", "external_id"],
        unique=True,
        postgresql_where=sa.text("external_id IS NOT NULL"),
    )
    op.create_index("raw_docs_tenant_created", "raw_docs", ["tenant", "created_at"])
    op.create_table(
        "processed_docs",
        sa.Column("doc_id", sa.Text(), sa.ForeignKey("raw_docs.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("run_id", sa.Text(), nullable=False),
        sa.Column("language", sa.Text(), nullable=True),
        sa.Column("doc_class", sa.Text(), nullable=True),
        sa.Column("class_confidence", sa.Float(), nullable=True),
        sa.Column("tags", postgresql.ARRAY(sa.Text()), nullable=False, server_default=sa.text("'{}'")),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("pages", postgresql.JSONB(), nullable=False, comment="Per page: number, source, text, confidence"),
        sa.Column("entities", postgresql.JSONB(), nullable=False, comment="Field -> entities (shared/documents.py)"),
        sa.Column("provenance", postgresql.JSONB(), nullable=False, comment="Models, versions, workflow run"),
        sa.Column("ocr_result", postgresql.JSONB(), nullable=True, comment="BlobRef of the full OCR result"),
        sa.Column("warnings", postgresql.JSONB(), nullable=False, server_default=sa.text("'[]'::jsonb")),
        sa.Column("user_class", sa.Text(), nullable=True, comment="The class a person gave it (PATCH)"),
        sa.Column("user_tags", postgresql.ARRAY(sa.Text()), nullable=True, comment="The tags a person gave it"),
        sa.Column("processed_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    )
    op.create_index("processed_docs_tenant_class", "processed_docs", ["tenant", "doc_class"])
    op.create_index("processed_docs_tags", "processed_docs", ["tags"], postgresql_using="gin")
    op.create_table(
        "doc_corrections",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("doc_id", sa.Text(), sa.ForeignKey("raw_docs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("field", sa.Text(), nullable=False, comment="class | tags"),
        sa.Column("old_value", postgresql.JSONB(), nullable=True),
        sa.Column("new_value", postgresql.JSONB(), nullable=False),
        sa.Column("corrected_by", sa.Text(), nullable=True),
        sa.Column("corrected_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    )
    op.create_table(
        "doc_label_model",
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False, comment="class | tag"),
        sa.Column("label", sa.Text(), nullable=False, comment="A class, or <tag>:yes / <tag>:no"),
        sa.Column("docs", sa.Integer(), nullable=False),
        sa.Column("terms", postgresql.JSONB(), nullable=False, comment="term -> documents containing it"),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("tenant", "kind", "label"),
    )


def downgrade() -> None:
    op.drop_table("doc_label_model")
    op.drop_table("doc_corrections")
    op.drop_table("processed_docs")
    op.drop_table("raw_docs")
