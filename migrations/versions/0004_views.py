"""Documented SQL views for psql, Datasette and BI tools (see the README's "Reading the log with SQL").

guardrail_calls          one row per call: its request joined with its outcome
guardrail_fired_rules    one row per (call, fired rule)
guardrail_policy_changes policy reloads, applied and refused

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

CALLS = """
CREATE VIEW guardrail_calls AS
SELECT r.call_id, r.created_at AS started_at, o.created_at AS finished_at, r.user_id, r.roles,
       COALESCE(o.status, r.status) AS status, o.decision, o.flagged, o.rules, r.policy_name, r.policy_version,
       r.pipeline_class, r.model_name, r.privacy_mode, r.prompts, r.negative_prompts, o.params, o.detail, o.error,
       r.chain_seq AS request_seq, o.chain_seq AS outcome_seq, r.erased_at
FROM audit_events r
LEFT JOIN audit_events o ON o.call_id = r.call_id AND o.kind = 'outcome'
WHERE r.kind = 'request'
"""

FIRED_RULES = {
    "sqlite": """
CREATE VIEW guardrail_fired_rules AS
SELECT o.call_id, o.created_at, o.user_id, o.decision, rule.value AS rule_id
FROM audit_events o, json_each(o.rules) AS rule
WHERE o.kind = 'outcome'
""",
    "postgresql": """
CREATE VIEW guardrail_fired_rules AS
SELECT o.call_id, o.created_at, o.user_id, o.decision, rule.value AS rule_id
FROM audit_events o, jsonb_array_elements_text(o.rules::jsonb) AS rule(value)
WHERE o.kind = 'outcome'
""",
}

POLICY_CHANGES = """
CREATE VIEW guardrail_policy_changes AS
SELECT created_at, status, policy_name, policy_version, error, detail
FROM audit_events
WHERE kind = 'policy'
"""


def upgrade() -> None:
    op.execute(CALLS)
    op.execute(FIRED_RULES[op.get_bind().dialect.name])
    op.execute(POLICY_CHANGES)


def downgrade() -> None:
    for view in ("guardrail_policy_changes", "guardrail_fired_rules", "guardrail_calls"):
        op.execute(f"DROP VIEW {view}")
