"""Stage: the policy's content classifier rules on the outputs, after screening and before the label,
the watermark and the signature (a blurred image is then marked and signed as it is returned). Each
model runs once per call over all images; its scores go into the audit outcome and the manifest,
the rules that fire into the decision (block withholds the images, review holds them, flag and blur
return them, blur with the detected boxes blurred in place)."""

from __future__ import annotations

from typing import Any

from guardrail.errors import MarkingError
from guardrail.images import pixels_of, write_pixels
from guardrail.pipeline.outputs import as_returned
from guardrail.pipeline.state import CallState
from guardrail.policy.engine import PolicyEngine
from guardrail.workers import Each, spread


def classify(evidence: Any, rules: dict[str, Any], images: list[Any], role: str) -> tuple[Any, dict[str, Any]]:
    """(the judgement of the rules, the note the audit records) for images in a role."""
    from guardrail.classify.rules import judge, run_models, summary

    found, identities = run_models(rules, lambda model: evidence.classify(role, images, model))
    return judge(rules, found, role), {f"{role}s": summary(found, identities)}


class ClassifyOutputs:
    """The active policy's classifier rules decide; the shadow policy's, when it has some, decide its
    own decision over the same model runs (each model runs once per call)."""

    name = "classify_outputs"

    def __init__(self, each: Each = map, shadow: PolicyEngine | None = None) -> None:
        self.each = each
        self.shadow = shadow

    def __call__(self, state: CallState) -> CallState:
        from guardrail.classify.rules import applicable

        if not state.images or state.denied:
            return state
        assert state.evidence is not None and state.decision is not None
        active, request = state.decision, state.request
        if self.shadow is not None and state.shadow is not None and self.shadow.policy.classifiers:
            theirs = applicable(self.shadow.policy.classifiers, request.user, request.roles, "output")
            if theirs:
                shadowed = classify(state.evidence, theirs, list(state.images), "output")[0]
                state = state.evolve(shadow=state.shadow.with_fired(shadowed.fired))
        rules = applicable(state.engine.policy.classifiers, request.user, request.roles, "output")
        if not rules:
            return state
        judgement, note = classify(state.evidence, rules, list(state.images), "output")
        decision = active.with_fired(judgement.fired)
        if not judgement.blur or not decision.allowed:
            return state.evolve(decision=decision, notes=state.noted(classifiers=note))
        note["blurred"] = {str(i): [list(box) for box in boxes] for i, boxes in judgement.blur.items()}
        targets = [(state.images[i], boxes, state.call) for i, boxes in judgement.blur.items()]
        described = spread(self.each, lambda target: _blur(*target), targets)
        digests, fingerprints = list(state.digests), list(state.fingerprints)
        for index, (digest, hashes) in zip(judgement.blur, described, strict=True):
            digests[index], fingerprints[index] = digest, hashes
        return state.evolve(
            decision=decision,
            digests=tuple(digests),
            fingerprints=tuple(fingerprints),
            notes=state.noted(classifiers=note),
        )


def _blur(image: Any, boxes: list[tuple[int, int, int, int]], call: Any) -> tuple[str, tuple[int, int, int, int]]:
    """Blur the boxes of one image in place; its hash and fingerprint as it is now returned. An image
    whose pixels cannot be written withholds the call's images: the policy's blur would not be met."""
    from guardrail.classify.blur import blur_boxes

    pixels, why = pixels_of(image)
    if pixels is None:
        raise MarkingError(f"the classifier rule's blur cannot be applied: {why}", call.call_id if call else None)
    blur_boxes(pixels, boxes)
    write_pixels(image, pixels)
    return as_returned(image)
