"""The audit_events table: one request and one outcome event per guarded call.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_Seq = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "audit_events",
        sa.Column("seq", _Seq, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(32), nullable=False, unique=True),
        sa.Column("call_id", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("schema_version", sa.Integer, nullable=False),
        sa.Column("user_id", sa.String(256)),
        sa.Column("roles", sa.JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("decision", sa.String(8)),
        sa.Column("flagged", sa.Boolean, nullable=False),
        sa.Column("rules", sa.JSON, nullable=False),
        sa.Column("policy_name", sa.String(200), nullable=False),
        sa.Column("policy_version", sa.String(64), nullable=False),
        sa.Column("pipeline_class", sa.String(200)),
        sa.Column("model_name", sa.String(1024)),
        sa.Column("privacy_mode", sa.String(16), nullable=False),
        sa.Column("hmac_key_id", sa.String(32)),
        sa.Column("prompts", sa.JSON, nullable=False),
        sa.Column("negative_prompts", sa.JSON, nullable=False),
        sa.Column("params", sa.JSON, nullable=False),
        sa.Column("model", sa.JSON, nullable=False),
        sa.Column("inputs", sa.JSON, nullable=False),
        sa.Column("detail", sa.JSON, nullable=False),
        sa.Column("error", sa.Text),
    )
    # Few indexes on purpose: each one is written on every event, inside the wrapper's latency.
    for column in ("created_at", "user_id", "status"):
        op.create_index(f"ix_audit_events_{column}", "audit_events", [column])
    op.create_index("ix_audit_events_call_kind", "audit_events", ["call_id", "kind"])


def downgrade() -> None:
    op.drop_table("audit_events")
