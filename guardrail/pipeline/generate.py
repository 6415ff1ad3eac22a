"""Stages around the wrapped target: hand it the decision's changes, then run it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from guardrail.pipeline.state import CallState


class ApplyDecision:
    """Clamped parameters and appended negative prompts, as the target's own arguments."""

    name = "apply"

    def __call__(self, state: CallState) -> CallState:
        assert state.decision is not None
        args, kwargs = state.adapter.apply(state.args, dict(state.kwargs), state.decision)
        return state.evolve(call_args=(args, kwargs))


class Generate:
    """The wrapped pipeline or callable; its own errors are audited and re-raised by the loop. With the
    policy's `preview` and a diffusers pipeline that takes a step callback, the latents are checked at
    the chosen steps and a block stops the pipeline there (pipeline/preview.py): the call is denied,
    audited with the step."""

    name = "generate"

    def __init__(self, preview_decoder: str | Path | None = None) -> None:
        from guardrail.errors import ConfigError

        if preview_decoder is not None and not Path(preview_decoder).is_dir():  # refused at start, not at a call
            raise ConfigError(f"{preview_decoder}: the preview decoder (a TAESD / AutoencoderTiny folder) is not there")
        self.preview_decoder = preview_decoder
        """A local TAESD folder for the previews (else the VAE's fitted linear map)."""

    def __call__(self, state: CallState) -> CallState:
        from guardrail.errors import GenerationStopped

        assert state.call_args is not None and state.decision is not None
        args, kwargs = state.call_args
        watcher = _early_abort(state, kwargs, self.preview_decoder)
        try:
            output = state.adapter.target(*args, **kwargs)
        except GenerationStopped as stop:
            note = {"stopped_at": stop.step, "steps": stop.steps, "looked_at": [s + 1 for s in watcher.looked]}
            return state.evolve(decision=state.decision.with_fired(stop.fired), notes=state.noted(preview=note))
        changes: dict[str, Any] = {}
        if watcher is not None:
            changes["notes"] = state.noted(
                preview={"looked_at": [s + 1 for s in watcher.looked], "steps": watcher.steps}
            )
        return state.evolve(output=output, images=tuple(state.adapter.output_images(output)), **changes)


def _early_abort(state: CallState, kwargs: dict[str, Any], decoder_path: str | Path | None) -> Any:
    """The step callback that checks latent previews, put into the call's arguments (chained before the
    caller's own callback), when the policy asks for previews and the pipeline can give them."""
    import inspect

    policy = state.engine.policy
    pipeline = getattr(state.adapter, "pipeline", None)
    if policy.preview is None or pipeline is None or getattr(pipeline, "vae", None) is None:
        return None
    if "callback_on_step_end" not in inspect.signature(pipeline.__call__).parameters:
        return None
    theirs = kwargs.get("callback_on_step_end")
    if theirs is not None and not inspect.isfunction(theirs) and not inspect.ismethod(theirs):
        return None  # a PipelineCallback object: left alone
    from guardrail.pipeline.preview import EarlyAbort, tiny_decoder

    steps = int(kwargs.get("num_inference_steps") or state.request.steps or 50)  # as clamped by the decision
    decoder = tiny_decoder(decoder_path) if decoder_path is not None else None
    watcher = EarlyAbort(state, steps, pipeline.vae, theirs, decoder)
    kwargs["callback_on_step_end"] = watcher
    return watcher
