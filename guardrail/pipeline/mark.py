"""Stage: the imperceptible watermark, after the outputs were inspected and before they are signed (so the
signature covers the marked pixels). Each image gets its own random token, which the audit outcome
logs with the call in the fingerprint registry; `guardrail trace` reads it back from a stripped copy.
The marked images' hashes and fingerprints are taken again: the registry describes what was returned
(the mark moves a perceptual hash by a few bits, on some photos by 16 of 64).

The images are marked in place, in the containers the pipeline returned (PIL images, numpy arrays,
torch tensors), so the caller's own output object carries the mark without being rebuilt."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from guardrail.errors import MarkingError
from guardrail.images import image_sha256, pixels_of, write_pixels
from guardrail.pipeline.state import CallState


class MarkOutputs:
    name = "watermark_outputs"

    def __init__(self, each: Callable[..., Iterable[Any]] = map) -> None:
        self.each = each

    def __call__(self, state: CallState) -> CallState:
        setting = state.engine.policy.marking.watermark
        if setting == "off" or not state.images or state.denied:
            return state
        from guardrail.marking.watermark import NAME

        required = setting == "required"
        results = list(self.each(lambda image: _mark(image, required), state.images))
        skipped = {str(i): reason for i, (_, reason) in enumerate(results) if reason is not None}
        if required and skipped:
            assert state.call is not None
            first, reason = next(iter(skipped.items()))
            raise MarkingError(f"image {first} cannot carry the required watermark: {reason}", state.call.call_id)
        tokens = tuple(token for token, _ in results)
        note: dict[str, Any] = {
            **state.notes.get("marking", {}),  # the label drawn before
            "watermark": NAME,
            "marked": sum(t is not None for t in tokens),
        }
        if skipped:
            note["unmarked"] = skipped
        from guardrail.screening.hashes import fingerprint

        fingerprints = list(state.fingerprints)
        for position, token in enumerate(tokens):
            if token is not None and position < len(fingerprints):
                fingerprints[position] = fingerprint(state.images[position])
        return state.evolve(
            watermarks=tokens,
            digests=tuple(image_sha256(image) for image in state.images),
            fingerprints=tuple(fingerprints),
            notes=state.noted(marking=note),
        )


def _mark(image: Any, verify: bool) -> tuple[int | None, str | None]:
    """Mark one image in place: (its token, None), or (None, why it was left unmarked)."""
    from guardrail.marking import watermark

    pixels, why = pixels_of(image)
    if pixels is None:
        return None, why
    if min(pixels.shape[:2]) < watermark.MIN_SIDE:
        return None, f"{pixels.shape[1]}x{pixels.shape[0]} is under the mark's {watermark.MIN_SIDE} px"
    token = watermark.new_token()
    marked = watermark.embed(pixels, token)
    if verify:
        found = watermark.detect(marked)
        if found is None or found.token != token:
            return None, "the mark does not read back from this image (too flat or saturated)"
    write_pixels(image, marked)
    return token, None
