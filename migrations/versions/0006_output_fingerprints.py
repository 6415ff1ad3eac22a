"""The fingerprint registry: each returned image's perceptual fingerprint, written with the outcome.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "output_fingerprints",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("call_id", sa.String(32), nullable=False),
        sa.Column("image_index", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("algorithm", sa.String(40), nullable=False),
        sa.Column("hash0", sa.BigInteger(), nullable=False),
        sa.Column("hash1", sa.BigInteger(), nullable=False),
        sa.Column("hash2", sa.BigInteger(), nullable=False),
        sa.Column("hash3", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("signed_sha256", sa.String(64)),
    )
    op.create_index("ix_output_fingerprints_call_id", "output_fingerprints", ["call_id"])
    op.create_index("ix_output_fingerprints_created_at", "output_fingerprints", ["created_at"])


def downgrade() -> None:
    op.drop_table("output_fingerprints")
