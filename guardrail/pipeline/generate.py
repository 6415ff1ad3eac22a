"""Stages around the wrapped target: hand it the decision's changes, then run it."""

from __future__ import annotations

from guardrail.pipeline.state import CallState


class ApplyDecision:
    """Clamped parameters and appended negative prompts, as the target's own arguments."""

    name = "apply"

    def __call__(self, state: CallState) -> CallState:
        assert state.decision is not None
        args, kwargs = state.adapter.apply(state.args, dict(state.kwargs), state.decision)
        return state.evolve(call_args=(args, kwargs))


class Generate:
    """The wrapped pipeline or callable; its own errors are audited and re-raised by the loop."""

    name = "generate"

    def __call__(self, state: CallState) -> CallState:
        assert state.call_args is not None
        args, kwargs = state.call_args
        output = state.adapter.target(*args, **kwargs)
        return state.evolve(output=output, images=tuple(state.adapter.output_images(output)))
