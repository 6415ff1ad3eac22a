"""Stage: read the call into a GenerationRequest and the call's context (id, policy, prompt privacy)."""

from __future__ import annotations

from collections.abc import Callable

from guardrail.pipeline.state import CallState
from guardrail.privacy import PromptPrivacy
from guardrail.request import CallContext


class ReadCall:
    name = "read"

    def __init__(self, privacy: Callable[[str], PromptPrivacy], new_id: Callable[[], str]) -> None:
        self.privacy = privacy
        self.new_id = new_id

    def __call__(self, state: CallState) -> CallState:
        engine, caller = state.engine, state.caller
        request = state.adapter.read(
            state.args,
            dict(state.kwargs),
            user=caller.user,
            roles=caller.roles,
            tenant=caller.tenant,
            hash_weights=engine.needs_weight_hashes,
        )
        privacy = self.privacy(engine.policy.privacy.prompts)
        return state.evolve(call=CallContext(self.new_id(), request, engine.policy.name, engine.version, privacy))
