"""quota_usage: images counted per quota, subject and window, shared by every process.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "quota_usage",
        sa.Column("quota_id", sa.String(128), primary_key=True),
        sa.Column("subject", sa.String(256), primary_key=True),
        sa.Column("window_start", sa.BigInteger, primary_key=True),
        sa.Column("used", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("quota_usage")
