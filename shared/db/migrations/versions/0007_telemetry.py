"""Telemetry: scraped time series (samples and cumulative histograms), spans, alerts and silences.

Times are unix seconds (``double precision``): the telemetry service does its window arithmetic
in seconds, and every row of one scrape carries the scrape's time.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "telemetry_series",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("labels", postgresql.JSONB(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False, comment="counter, gauge or histogram"),
        sa.Column("bounds", postgresql.ARRAY(sa.Float()), nullable=True, comment="histogram bucket upper bounds"),
        sa.UniqueConstraint("name", "labels"),
    )
    op.create_table(
        "telemetry_samples",
        sa.Column("series_id", sa.BigInteger(), sa.ForeignKey("telemetry_series.id", ondelete="CASCADE")),
        sa.Column("ts", sa.Float(), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("series_id", "ts"),
    )
    op.create_table(
        "telemetry_histograms",
        sa.Column("series_id", sa.BigInteger(), sa.ForeignKey("telemetry_series.id", ondelete="CASCADE")),
        sa.Column("ts", sa.Float(), nullable=False),
        sa.Column("counts", postgresql.ARRAY(sa.Float()), nullable=False, comment="cumulative, per bound"),
        sa.Column("sum", sa.Float(), nullable=False),
        sa.Column("count", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("series_id", "ts"),
    )
    op.create_index("telemetry_samples_ts", "telemetry_samples", ["ts"])
    op.create_index("telemetry_histograms_ts", "telemetry_histograms", ["ts"])
    op.create_table(
        "telemetry_spans",
        sa.Column("trace_id", sa.Text(), nullable=False),
        sa.Column("span_id", sa.Text(), nullable=False),
        sa.Column("parent_id", sa.Text(), nullable=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("service", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("start_ts", sa.Float(), nullable=False),
        sa.Column("end_ts", sa.Float(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("status_message", sa.Text(), nullable=True),
        sa.Column("attributes", postgresql.JSONB(), nullable=False),
        sa.PrimaryKeyConstraint("trace_id", "span_id"),
    )
    op.create_index("telemetry_spans_start", "telemetry_spans", ["start_ts"])
    # The run drill-down finds a run's trace by the workflow id the Temporal interceptor records.
    op.execute("CREATE INDEX telemetry_spans_workflow ON telemetry_spans ((attributes->>'temporalWorkflowID'))")
    op.create_table(
        "telemetry_alerts",
        sa.Column("id", sa.Text(), primary_key=True),
        sa.Column("fingerprint", sa.Text(), nullable=False),
        sa.Column("rule", sa.Text(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False, comment="pending, firing or resolved"),
        sa.Column("data", postgresql.JSONB(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
    )
    op.create_index("telemetry_alerts_state", "telemetry_alerts", ["state", "updated_at"])
    op.create_table(
        "telemetry_silences",
        sa.Column("id", sa.Text(), primary_key=True),
        sa.Column("matchers", postgresql.JSONB(), nullable=False),
        sa.Column("starts_at", sa.Float(), nullable=False),
        sa.Column("ends_at", sa.Float(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("created_by", sa.Text(), nullable=False),
    )


def downgrade() -> None:
    for table in (
        "telemetry_silences",
        "telemetry_alerts",
        "telemetry_spans",
        "telemetry_histograms",
        "telemetry_samples",
        "telemetry_series",
    ):
        op.drop_table(table)
