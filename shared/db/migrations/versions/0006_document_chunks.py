"""Search over documents: chunks with a full-text vector (jieba-segmented) and an embedding (pgvector).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

EMBEDDING_DIM = 512  # use_multilingual_v3


def upgrade() -> None:
    op.create_table(
        "doc_chunks",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("doc_id", sa.Text(), sa.ForeignKey("raw_docs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("chunk_no", sa.Integer(), nullable=False),
        sa.Column("page", sa.Integer(), nullable=False),
        sa.Column("start_offset", sa.Integer(), nullable=False, comment="In the page's text"),
        sa.Column("end_offset", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("terms", postgresql.TSVECTOR(), nullable=False, comment="jieba-segmented, 'simple' config"),
        sa.Column("embedding_model", sa.Text(), nullable=True),
        sa.UniqueConstraint("doc_id", "chunk_no"),
    )
    op.execute(f"ALTER TABLE doc_chunks ADD COLUMN embedding vector({EMBEDDING_DIM})")
    op.create_index("doc_chunks_terms", "doc_chunks", ["terms"], postgresql_using="gin")
    op.create_index("doc_chunks_tenant", "doc_chunks", ["tenant"])
    op.execute(
        "CREATE INDEX doc_chunks_embedding ON doc_chunks USING hnsw (embedding vector_cosine_ops) "
        "WITH (m = 16, ef_construction = 64)"
    )


def downgrade() -> None:
    op.drop_table("doc_chunks")
