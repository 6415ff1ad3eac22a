"""A picture of why an image matched a protected reference: the two side by side, with a line between
each pair of keypoints that one rotation, scale and shift maps onto each other (what the keypoint
tier counted). For a reviewer deciding whether the match is real."""

from __future__ import annotations

from typing import Any

import numpy as np

from guardrail.images import to_pil
from guardrail.screening.keypoints import SIDE, agreeing, detect, prepare

_GAP = 16
_LINE = (0, 200, 255)  # an orange that reads on photos, and for red-green colour blindness
_POINT = (255, 255, 255)


def match_picture(image: Any, reference: Any, *, mirrored: bool = False) -> tuple[Any, int]:
    """(an RGB PIL image: `image` left, `reference` right, agreeing keypoints joined; their count).
    `mirrored`: the image matched as a mirror copy, so its mirror image is shown."""
    import cv2
    from PIL import Image, ImageOps

    query = to_pil(image).convert("RGB")
    if mirrored:
        query = ImageOps.mirror(query)
    sides = [_scaled(query), _scaled(to_pil(reference).convert("RGB"))]
    source, target = agreeing(detect(prepare(query)), detect(prepare(reference)))
    height = max(side.shape[0] for side in sides)
    canvas = np.full((height, sides[0].shape[1] + _GAP + sides[1].shape[1], 3), 255, np.uint8)
    canvas[: sides[0].shape[0], : sides[0].shape[1]] = sides[0]
    offset = sides[0].shape[1] + _GAP
    canvas[: sides[1].shape[0], offset:] = sides[1]
    bgr = np.ascontiguousarray(canvas[..., ::-1])
    for (x0, y0), (x1, y1) in zip(source, target, strict=True):
        start, end = (round(float(x0)), round(float(y0))), (round(float(x1)) + offset, round(float(y1)))
        cv2.line(bgr, start, end, _LINE, 1, cv2.LINE_AA)
        cv2.circle(bgr, start, 3, _POINT, 1, cv2.LINE_AA)
        cv2.circle(bgr, end, 3, _POINT, 1, cv2.LINE_AA)
    return Image.fromarray(bgr[..., ::-1]), len(source)


def _scaled(image: Any) -> np.ndarray:
    """The image at the size keypoints are found at (SIDE px on its longer side), as prepare() scales it."""
    from PIL import Image

    scale = SIDE / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return np.asarray(image.resize(size, Image.Resampling.LANCZOS))
