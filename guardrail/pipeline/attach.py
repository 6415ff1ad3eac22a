"""Finish stage: what the caller gets. The pipeline's own output type with `.governance` attached; for
a denied call, PolicyViolation (on_deny: raise) or a result with no images (on_deny: return); for a
call held for review, PendingReview (on_review: raise) or a result with no images (on_review: return)."""

from __future__ import annotations

from typing import Literal

from guardrail.errors import PendingReview, PolicyViolation
from guardrail.pipeline.state import CallState
from guardrail.request import Governance, GuardedResult

OnDeny = Literal["raise", "return"]


class Attach:
    name = "attach"

    def __init__(self, on_deny: OnDeny, on_review: OnDeny = "return") -> None:
        self.on_deny = on_deny
        self.on_review = on_review

    def __call__(self, state: CallState) -> CallState:
        if state.error is not None or state.call is None or state.decision is None:
            return state
        call = state.call
        if state.denied:
            governance = Governance(call.call_id, state.decision, call.policy_name, call.policy_version)
            if self.on_deny == "raise":
                raise PolicyViolation(state.decision, call.call_id)
            return state.evolve(result=GuardedResult(images=[], governance=governance))
        governance = Governance(
            call.call_id,
            state.decision,
            call.policy_name,
            call.policy_version,
            state.digests,
            state.signed,
            state.matches,
            pending_review=bool(state.held),
        )
        if state.held:  # nothing leaves before people approve it
            if self.on_review == "raise":
                raise PendingReview(state.decision, call.call_id)
            return state.evolve(result=GuardedResult(images=[], governance=governance))
        return state.evolve(result=state.adapter.attach(state.output, governance))
