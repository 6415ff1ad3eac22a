"""Stage: the visible label, drawn onto every returned image before the watermark and the signature
(both then cover it), in place, in the containers the pipeline returned. Its text, position and size
go into the audit outcome and the manifest's governance assertion; each labelled image's hash and
fingerprint are taken again. An image the label cannot be drawn on withholds the call's images: a
policy that asks for an explicit label is not met without it."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from guardrail.errors import MarkingError
from guardrail.images import pixels_of, write_pixels
from guardrail.pipeline.outputs import as_returned
from guardrail.pipeline.state import CallState


class LabelOutputs:
    name = "label_outputs"

    def __init__(self, each: Callable[..., Iterable[Any]] = map) -> None:
        self.each = each

    def __call__(self, state: CallState) -> CallState:
        label = state.engine.policy.marking.label
        if label is None or not state.images or state.denied:
            return state
        from guardrail.marking.label import draw_label

        def one(image: Any) -> tuple[dict[str, Any], tuple[str, tuple[int, int, int, int]]]:
            pixels, why = pixels_of(image)
            if pixels is None:
                assert state.call is not None
                raise MarkingError(f"the policy's visible label cannot be drawn: {why}", state.call.call_id)
            try:
                drawn = draw_label(
                    pixels, label.text, position=label.position, min_size_pct=label.min_size_pct, font=label.font
                )
            except ValueError as exc:
                assert state.call is not None
                raise MarkingError(f"the policy's visible label cannot be drawn: {exc}", state.call.call_id) from None
            write_pixels(image, pixels)
            return drawn, as_returned(image)

        results = list(self.each(one, state.images))
        note = {**state.notes.get("marking", {}), "label": [drawn for drawn, _ in results]}
        return state.evolve(
            digests=tuple(digest for _, (digest, _) in results),
            fingerprints=tuple(hashes for _, (_, hashes) in results),
            notes=state.noted(marking=note),
        )
