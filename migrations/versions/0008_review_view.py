"""A view of the review actions: one row per approval, rejection or expiry of a call held for review.

guardrail_reviews        call_id, acted_at, reviewer, status (the item's after the action), detail
                         (action, note, approvals so far, what was released)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

REVIEWS = """
CREATE VIEW guardrail_reviews AS
SELECT call_id, created_at AS acted_at, user_id AS reviewer, status, detail, chain_seq
FROM audit_events
WHERE kind = 'review'
"""


def upgrade() -> None:
    op.execute(REVIEWS)


def downgrade() -> None:
    op.execute("DROP VIEW guardrail_reviews")
