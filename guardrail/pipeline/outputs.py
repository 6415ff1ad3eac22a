"""Stages that look at each generated image: its hash, then the reference sets the policy screens with.
A `block` match denies the call: every image of it is withheld."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from guardrail.images import image_sha256
from guardrail.pipeline.state import CallState
from guardrail.policy.engine import PolicyEngine


class HashOutputs:
    name = "hash_outputs"

    def __call__(self, state: CallState) -> CallState:
        return state.evolve(digests=tuple(image_sha256(image) for image in state.images))


class FingerprintOutputs:
    """Each image's perceptual fingerprint (the screening hashes): screening reuses it, and the audit
    outcome writes it to the fingerprint registry, which `guardrail trace` searches."""

    name = "fingerprint_outputs"

    def __init__(self, each: Callable[..., Iterable[Any]] = map) -> None:
        self.each = each

    def __call__(self, state: CallState) -> CallState:
        if not state.images:
            return state
        from guardrail.screening.hashes import fingerprint

        return state.evolve(fingerprints=tuple(self.each(fingerprint, state.images)))


def as_returned(image: Any) -> tuple[str, tuple[int, int, int, int]]:
    """The SHA-256 and perceptual fingerprint of an image whose pixels a stage changed (label, mark):
    the audit outcome and the registry describe what the caller gets."""
    from guardrail.screening.hashes import fingerprint

    return image_sha256(image), fingerprint(image)


class ScreenOutputs:
    """Screens the outputs for the active policy, and for the shadow policy (sharing the results when
    both screen with the same sets and thresholds)."""

    name = "screen_outputs"

    def __init__(self, shadow: PolicyEngine | None = None) -> None:
        self.shadow = shadow

    def __call__(self, state: CallState) -> CallState:
        from guardrail.screening.screen import apply_matches, summary

        assert state.evidence is not None and state.decision is not None
        sets = state.engine.policy.screening.sets
        shadow = state.shadow
        if self.shadow is not None and shadow is not None and self.shadow.policy.screening.sets:
            found = state.evidence.screen("output", state.images, self.shadow.policy.screening.sets, state.fingerprints)
            shadow = apply_matches(shadow, found, "output")
        if not sets:
            return state.evolve(shadow=shadow)
        matches = state.evidence.screen("output", state.images, sets, state.fingerprints)
        return state.evolve(
            decision=apply_matches(state.decision, matches, "output"),
            shadow=shadow,
            matches=tuple(tuple(found) for found in matches),
            notes=state.noted(screening={"outputs": summary(matches)}),
        )
