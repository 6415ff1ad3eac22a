"""The watermark token of each returned image, beside its fingerprint in the registry, indexed for trace.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("output_fingerprints") as batch:
        batch.add_column(sa.Column("watermark", sa.BigInteger()))
        batch.add_column(sa.Column("watermark_algorithm", sa.String(60)))
        batch.create_index("ix_output_fingerprints_watermark", ["watermark"])


def downgrade() -> None:
    with op.batch_alter_table("output_fingerprints") as batch:
        batch.drop_index("ix_output_fingerprints_watermark")
        batch.drop_column("watermark_algorithm")
        batch.drop_column("watermark")
