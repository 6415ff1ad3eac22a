"""Stage: input images (img2img start, masks, control images) within guardrail's size limit, before
anything looks at their pixels. The call is on record by then, so a refusal is audited."""

from __future__ import annotations

from guardrail.errors import ImageTooLarge
from guardrail.images import MAX_IMAGE_PIXELS
from guardrail.pipeline.state import CallState


class CheckInputs:
    name = "check_inputs"

    def __init__(self, max_pixels: int = MAX_IMAGE_PIXELS) -> None:
        self.max_pixels = max_pixels

    def __call__(self, state: CallState) -> CallState:
        for index, item in enumerate(state.request.input_images):
            if item.width and item.height and item.width * item.height > self.max_pixels:
                raise ImageTooLarge(
                    f"input image {index} ({item.role}): {item.width}x{item.height} is over the "
                    f"{self.max_pixels}-pixel limit"
                )
        return state
