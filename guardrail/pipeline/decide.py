"""The one pre-generation decision: the policy's rules, its concept rules, input screening, input
classification and quotas.

The Guard, `policy check`, `policy explain`, policy test cases, `policy replay` and the shadow policy
all decide through `decide()`, so what an author tests is what the Guard does. The expensive checks
come from one `Evidence` per call, which the shadow policy's decision shares.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from guardrail.pipeline.evidence import Checks, Evidence
from guardrail.pipeline.state import CallState
from guardrail.policy.decision import Decision, FiredRule
from guardrail.policy.engine import PolicyEngine
from guardrail.policy.quota import apply_quotas
from guardrail.request import GenerationRequest

INPUT_PROVENANCE_RULE = "provenance.input-invalid"


@dataclass(frozen=True)
class Verdict:
    """A decision and what the audit outcome records of how it was reached."""

    decision: Decision
    notes: Mapping[str, Any] = field(default_factory=dict)
    unchecked: tuple[str, ...] = ()
    """Checks the policy asks for that could not be made here (`quotas` without an audit database)."""


def decide(engine: PolicyEngine, request: GenerationRequest, evidence: Evidence, *, charge: bool) -> Verdict:
    """The whole pre-generation decision for a request under one policy. Quotas are consulted only
    when the decision is otherwise not a deny, and charged only when `charge` is true (the Guard);
    `policy check` and the shadow ask what they would say. Raises ConfigError when the policy needs a
    check that is not configured (concept rules without an embedding model)."""
    from guardrail.screening.screen import apply_matches, summary

    policy = engine.policy
    decision = engine.evaluate(request)
    notes: dict[str, Any] = {}
    unchecked: tuple[str, ...] = ()
    if decision.allowed and policy.screening.concepts:
        decision = decision.with_fired(evidence.concepts(policy.screening.concepts))
    inputs = [item.image for item in request.input_images if item.image is not None]
    if decision.allowed and policy.screening.sets and policy.screening.inputs and inputs:
        found = evidence.screen("input", inputs, policy.screening.sets)
        decision = apply_matches(decision, found, "input")
        notes["screening"] = {"inputs": summary(found)}
    if decision.allowed and policy.classifiers and inputs:
        from guardrail.classify.rules import applicable
        from guardrail.pipeline.classify import classify

        rules = applicable(policy.classifiers, request.user, request.roles, "input")
        if rules:
            judgement, note = classify(evidence, rules, inputs, "input")
            decision = decision.with_fired(judgement.fired)
            notes["classifiers"] = note
    if decision.allowed and request.input_images:
        checked = evidence.input_provenance()
        if checked:
            notes["provenance"] = {"inputs": checked}
        invalid = [item for item in checked if not item["valid"]]
        action = policy.provenance.inputs.invalid
        if invalid and action != "allow":
            first = invalid[0]
            detail = f"input image {first['input']} ({first['role']}): {', '.join(first['failures']) or first['state']}"
            message = "an input image's C2PA manifest does not validate"
            decision = decision.with_fired([FiredRule(INPUT_PROVENANCE_RULE, action, message, detail)])
    if decision.allowed and policy.quotas:
        if evidence.checks.quotas is None:
            unchecked = ("quotas",)
        else:
            decision = apply_quotas(decision, policy.quotas, request, evidence, commit=charge)
    return Verdict(decision, notes, unchecked)


def decider(checks: Checks | None = None) -> Callable[[PolicyEngine, GenerationRequest], Decision]:
    """decide() as a plain function of a policy and a request that never charges a quota: what policy
    test cases, replay and previews use."""
    configured = checks or Checks()

    def decide_request(engine: PolicyEngine, request: GenerationRequest) -> Decision:
        return decide(engine, request, Evidence(request, configured), charge=False).decision

    return decide_request


def shadow_notes(shadow: PolicyEngine, candidate: Decision, decision: Decision) -> dict[str, Any]:
    """What the audit outcome records of a shadow policy: its decision, only where it disagrees with
    the active one (effect, fired rules or modifications). Nothing else changes."""
    if candidate.same_as(decision):
        return {}
    return {"shadow": {"policy": shadow.policy.name, "version": shadow.version, "decision": candidate.as_dict()}}


class Decide:
    """Stage: the one decision (and the shadow policy's, over the same evidence)."""

    name = "decide"

    def __init__(self, checks: Checks, shadow: PolicyEngine | None = None) -> None:
        self.checks = checks
        self.shadow = shadow

    def __call__(self, state: CallState) -> CallState:
        evidence = Evidence(state.request, self.checks)
        verdict = decide(state.engine, state.request, evidence, charge=True)
        shadow = None
        if self.shadow is not None:  # after the active decision: a charge it made is read, not repeated
            shadow = decide(self.shadow, state.request, evidence, charge=False).decision
        return state.evolve(
            decision=verdict.decision, shadow=shadow, evidence=evidence, notes=state.noted(**verdict.notes)
        )
