"""Replaying logged requests against a candidate policy: what would change before it goes live.

A request can be replayed where its privacy mode kept the prompt text (plaintext); requests logged
under hmac or redacted are counted as not replayable, since their prompts cannot be judged again.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from typing import Any

from guardrail.policy.decision import Decision
from guardrail.request import GenerationRequest, ModelIdentity


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
    rows: Iterable[dict[str, Any]], decide: Callable[[GenerationRequest], Decision], quota_ids: Collection[str] = ()
) -> ReplayReport:
    """Decide every logged request again (`rows`: request events with their outcome's decision and rules,
    as guardrail.audit.query.logged_requests gives them) and compare with what was decided. Calls decided
    by a quota (`quota_ids`) are not replayed: quotas depend on the traffic of the moment."""
    replayed = not_replayable = 0
    changes = []
    for row in rows:
        logged_rules = list(row["outcome_rules"] or [])
        if row["privacy_mode"] != "plaintext" or row["outcome_decision"] is None or set(logged_rules) & set(quota_ids):
            not_replayable += 1
            continue
        replayed += 1
        decision = decide(request_from_event(row))
        if decision.effect != row["outcome_decision"] or set(decision.rule_ids) != set(logged_rules):
            changes.append(
                ReplayChange(
                    row["call_id"],
                    row["user_id"],
                    row["outcome_decision"],
                    logged_rules,
                    decision.effect,
                    list(decision.rule_ids),
                )
            )
    return ReplayReport(replayed, not_replayable, changes)
