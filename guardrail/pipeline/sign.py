"""Stage: sign every image with the call's C2PA manifest, last, so that nothing touches the bytes after.
Where the policy requires provenance, a failed signature withholds the images (fail closed); else the
failure is recorded and the images are returned unsigned."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from guardrail.errors import SigningError
from guardrail.pipeline.state import CallState
from guardrail.provenance.manifest import SoftBinding
from guardrail.provenance.signing import ImageSigner, sign_call


class Sign:
    name = "sign"

    def __init__(self, signer: ImageSigner | None, each: Callable[..., Iterable[Any]] = map) -> None:
        self.signer = signer
        self.each = each

    def __call__(self, state: CallState) -> CallState:
        if self.signer is None or state.held:
            return state  # a call held for review is signed when it is released
        assert state.call is not None and state.decision is not None
        try:
            manifests = call_manifests_of(self.signer, state)
            signed = sign_call(self.signer, list(state.images), state.call, manifests, each=self.each)
        except SigningError as exc:
            if state.engine.policy.provenance.required:
                raise SigningError(f"{exc}; the images were withheld", state.call.call_id) from exc
            return state.evolve(notes=state.noted(signing_error=str(exc)))
        return state.evolve(signed=tuple(signed))


def call_manifests_of(signer: ImageSigner, state: CallState) -> list[dict[str, Any]]:
    """The manifest each of the call's images is signed with (a call held for review keeps them)."""
    from guardrail.provenance.signing import call_manifests

    assert state.call is not None and state.decision is not None
    return call_manifests(
        signer,
        len(state.images),
        state.call,
        state.decision,
        state.notes.get("screening"),
        marking=_marking(state.notes.get("marking")),
        classifiers=state.notes.get("classifiers"),
        soft_bindings=_soft_bindings(state.watermarks, state.fingerprints),
    )


def _soft_bindings(
    watermarks: tuple[int | None, ...], fingerprints: tuple[tuple[int, int, int, int], ...]
) -> list[list[SoftBinding]]:
    """Each image's soft bindings: the watermark's algorithm and token (4 bytes, big-endian) when it
    was marked, then the perceptual fingerprint's name and its four 64-bit hashes (32 bytes)."""
    from guardrail.marking.watermark import NAME
    from guardrail.screening.hashes import FINGERPRINT

    count = max(len(watermarks), len(fingerprints))
    bindings: list[list[SoftBinding]] = [[] for _ in range(count)]
    for index, token in enumerate(watermarks):
        if token is not None:
            bindings[index].append(SoftBinding(NAME, token.to_bytes(4, "big")))
    for index, hashes in enumerate(fingerprints):
        value = b"".join(h.to_bytes(8, "big") for h in hashes)
        bindings[index].append(SoftBinding(f"org.guardrail.fingerprint.{FINGERPRINT}", value))
    return bindings


def _marking(note: dict[str, Any] | None) -> dict[str, Any] | None:
    """What the governance assertion says of the marks: the label as drawn on each image and the
    watermark's algorithm (each image's token is in its own soft-binding assertion)."""
    if not note:
        return None
    return {key: note[key] for key in ("label", "watermark") if key in note} or None
