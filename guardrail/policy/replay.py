"""Replaying logged requests against a candidate policy: what would change before it goes live.

A request can be replayed where its privacy mode kept the prompt text (plaintext); requests logged
under hmac or redacted are counted as not replayable, since their prompts cannot be judged again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from guardrail.policy.engine import PolicyEngine
from guardrail.request import GenerationRequest, ModelIdentity

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine


@dataclass(frozen=True)
class ReplayChange:
    call_id: str
    user: str | None
    logged: str
    logged_rules: list[str]
    candidate: str
    candidate_rules: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {
            "call_id": self.call_id,
            "user": self.user,
            "logged": self.logged,
            "logged_rules": self.logged_rules,
            "candidate": self.candidate,
            "candidate_rules": self.candidate_rules,
        }


@dataclass(frozen=True)
class ReplayReport:
    replayed: int = 0
    not_replayable: int = 0
    changes: list[ReplayChange] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "replayed": self.replayed,
            "unchanged": self.replayed - len(self.changes),
            "changed": len(self.changes),
            "not_replayable": self.not_replayable,
            "changes": [c.as_dict() for c in self.changes],
        }


def request_from_event(event: dict[str, Any]) -> GenerationRequest:
    """Rebuild the request of a logged request event (prompts must be plaintext)."""
    params = dict(event["params"])
    model = event["model"] or {}
    detail = event["detail"] or {}
    return GenerationRequest(
        prompts=tuple(event["prompts"]),
        negative_prompts=tuple(event["negative_prompts"]),
        has_prompt_embeds=bool(detail.get("has_prompt_embeds")),
        width=params.pop("width", None),
        height=params.pop("height", None),
        steps=params.pop("steps", None),
        guidance=params.pop("guidance", None),
        images_per_prompt=params.pop("images_per_prompt", 1) or 1,
        model=ModelIdentity(
            pipeline_class=model.get("pipeline_class") or "unknown",
            name_or_path=model.get("name_or_path"),
            adapters=tuple(model.get("adapters") or ()),
            weight_sha256=dict(model.get("weight_sha256") or {}),
            adapter_sha256=dict(model.get("adapter_sha256") or {}),
        ),
        user=event["user_id"],
        roles=tuple(event["roles"] or ()),
        tenant=detail.get("tenant"),
    )


def replay(
    engine: Engine, candidate: PolicyEngine, *, since: datetime | None = None, until: datetime | None = None
) -> ReplayReport:
    """Evaluate every logged request in the window with `candidate` and compare with what was decided.
    Quotas are not replayed (they depend on the traffic of the moment). Reads only."""
    import sqlalchemy as sa

    from guardrail.audit.tables import audit_events as ev

    outcome = ev.alias("outcome")
    query = (
        sa.select(ev, outcome.c.decision.label("o_decision"), outcome.c.rules.label("o_rules"))
        .select_from(ev.join(outcome, sa.and_(outcome.c.call_id == ev.c.call_id, outcome.c.kind == "outcome")))
        .where(ev.c.kind == "request")
        .order_by(ev.c.seq)
    )
    if since is not None:
        query = query.where(ev.c.created_at >= since)
    if until is not None:
        query = query.where(ev.c.created_at < until)
    replayed = not_replayable = 0
    changes = []
    quota_ids = {quota.id for quota in candidate.policy.quotas}
    with engine.connect() as connection:
        for row in connection.execute(query).mappings():
            quota_decided = bool(set(row["o_rules"] or []) & quota_ids)
            if row["privacy_mode"] != "plaintext" or row["o_decision"] is None or quota_decided:
                not_replayable += 1
                continue
            replayed += 1
            decision = candidate.evaluate(request_from_event(dict(row)))
            logged_rules = list(row["o_rules"] or [])
            if decision.effect != row["o_decision"] or set(decision.rule_ids) != set(logged_rules):
                changes.append(
                    ReplayChange(
                        row["call_id"],
                        row["user_id"],
                        row["o_decision"],
                        logged_rules,
                        decision.effect,
                        list(decision.rule_ids),
                    )
                )
    return ReplayReport(replayed, not_replayable, changes)
