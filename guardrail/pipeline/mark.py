"""Stage: the imperceptible watermark, after the outputs were inspected and before they are signed (so the
signature covers the marked pixels). Each image gets its own random token, which the audit outcome
logs with the call in the fingerprint registry; `guardrail trace` reads it back from a stripped copy.
The marked images' hashes and fingerprints are taken again: the registry describes what was returned
(the mark moves a perceptual hash by a few bits, on some photos by 16 of 64).

The images are marked in place, in the containers the pipeline returned (PIL images, numpy arrays,
torch tensors), so the caller's own output object carries the mark without being rebuilt."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from guardrail.errors import MarkingError
from guardrail.images import image_sha256, pixels_of, write_pixels
from guardrail.pipeline.state import CallState
from guardrail.workers import Each, cores, spread


class MarkOutputs:
    name = "watermark_outputs"

    def __init__(self, each: Each = map) -> None:
        self.each = each

    def __call__(self, state: CallState) -> CallState:
        setting = state.engine.policy.marking.watermark
        if setting == "off" or not state.images or state.denied:
            return state
        from guardrail.marking.watermark import NAME

        required = setting == "required"
        images = list(state.images)
        if len(images) >= cores():  # an image per worker
            marks = list(self.each(lambda image: _mark(image, required), images))
        else:  # each image's checks apart, so that one large image uses two cores
            marks = [_mark(image, required, self.each) for image in images]
        skipped = {str(i): mark.reason for i, mark in enumerate(marks) if mark.reason is not None}
        if required and skipped:
            assert state.call is not None
            first, reason = next(iter(skipped.items()))
            raise MarkingError(f"image {first} cannot carry the required watermark: {reason}", state.call.call_id)
        note: dict[str, Any] = {
            **state.notes.get("marking", {}),  # the label drawn before
            "watermark": NAME,
            "marked": sum(mark.token is not None for mark in marks),
        }
        if skipped:
            note["unmarked"] = skipped
        return state.evolve(
            watermarks=tuple(mark.token for mark in marks),
            digests=tuple(mark.digest or old for mark, old in zip(marks, state.digests, strict=False)),
            fingerprints=tuple(mark.fingerprint or old for mark, old in zip(marks, state.fingerprints, strict=False)),
            notes=state.noted(marking=note),
        )


@dataclass(frozen=True)
class _Marked:
    """One image after the stage: its token, hash and fingerprint when marked (taken again on the
    worker thread: the registry describes what is returned), else why not."""

    token: int | None = None
    digest: str | None = None
    fingerprint: tuple[int, int, int, int] | None = None
    reason: str | None = None


def _mark(image: Any, verify: bool, each: Each = map) -> _Marked:
    """Mark one image in place; then, through `each`, take its hash and fingerprint and (`verify`)
    read the mark back. A required mark that does not read back fails the call, which withholds the
    images."""
    from guardrail.marking import watermark
    from guardrail.screening.hashes import fingerprint

    pixels, why = pixels_of(image, writable=False)  # embed returns a marked copy
    if pixels is None:
        return _Marked(reason=why)
    if min(pixels.shape[:2]) < watermark.MIN_SIDE:
        return _Marked(reason=f"{pixels.shape[1]}x{pixels.shape[0]} is under the mark's {watermark.MIN_SIDE} px")
    token = watermark.new_token()
    marked = watermark.embed(pixels, token)
    write_pixels(image, marked)
    # what is returned is described again (the registry describes it), and the mark read back
    checks: list[Callable[[], Any]] = [partial(image_sha256, image), partial(fingerprint, image)]
    if verify:
        checks.append(partial(watermark.detect, marked))
    digest, hashes, *read = spread(each, lambda check: check(), checks)
    if read and (read[0] is None or read[0].token != token):
        return _Marked(reason="the mark does not read back from this image (too flat or saturated)")
    return _Marked(token, digest, hashes)
