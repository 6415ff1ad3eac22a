"""Hash chain and signed checkpoints: chain_seq, prev/core/personal/entry hashes, erased_at,
and the audit_checkpoints table. Events already logged are chained in their order.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_Seq = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_CHAIN = ("chain_seq", "prev_hash", "core_hash", "personal_hash", "entry_hash")


def upgrade() -> None:
    with op.batch_alter_table("audit_events") as batch:
        batch.add_column(sa.Column("chain_seq", sa.BigInteger, nullable=True))
        for name in _CHAIN[1:]:
            batch.add_column(sa.Column(name, sa.String(64), nullable=True))
        batch.add_column(sa.Column("erased_at", sa.DateTime(timezone=True), nullable=True))
    _chain_existing_events()
    with op.batch_alter_table("audit_events") as batch:
        for name in _CHAIN:
            batch.alter_column(name, nullable=False)
        batch.create_unique_constraint("uq_audit_events_chain_seq", ["chain_seq"])
    op.create_table(
        "audit_checkpoints",
        sa.Column("id", _Seq, primary_key=True, autoincrement=True),
        sa.Column("chain_seq", sa.BigInteger, nullable=False),
        sa.Column("entry_hash", sa.String(64), nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("signature", sa.String(128), nullable=False),
    )
    op.create_index("ix_audit_checkpoints_chain_seq", "audit_checkpoints", ["chain_seq"])


def _chain_existing_events() -> None:
    from guardrail.audit.chain import GENESIS, link
    from guardrail.audit.tables import audit_events

    connection = op.get_bind()
    columns = [c for c in audit_events.c if c.name not in (*_CHAIN, "erased_at")]
    rows = connection.execute(sa.select(*columns).order_by(audit_events.c.seq)).mappings().all()
    previous = GENESIS
    for number, row in enumerate(rows, 1):
        linked = link(dict(row), number, previous)
        connection.execute(
            audit_events.update().where(audit_events.c.seq == row["seq"]).values({k: linked[k] for k in _CHAIN})
        )
        previous = linked["entry_hash"]


def downgrade() -> None:
    op.drop_index("ix_audit_checkpoints_chain_seq", "audit_checkpoints")
    op.drop_table("audit_checkpoints")
    with op.batch_alter_table("audit_events") as batch:
        batch.drop_constraint("uq_audit_events_chain_seq", type_="unique")
        for name in (*_CHAIN, "erased_at"):
            batch.drop_column(name)
