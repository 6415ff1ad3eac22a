"""Blurring the regions a detector found, in place: strong enough that what was there cannot be read
back, and only inside the boxes (every other pixel is left as it was)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def blur_boxes(pixels: Any, boxes: Iterable[tuple[int, int, int, int]]) -> None:
    """Blur each (x, y, width, height) box of an 8-bit H x W (x C) array, in place: a pixelation to
    blocks of an eighth of the box's side, then a Gaussian over it."""
    import cv2

    height, width = pixels.shape[:2]
    for x, y, w, h in boxes:
        x0, y0 = max(0, int(x)), max(0, int(y))
        x1, y1 = min(width, int(x) + int(w)), min(height, int(y) + int(h))
        if x1 - x0 < 2 or y1 - y0 < 2:
            continue
        region = pixels[y0:y1, x0:x1]
        block = max(2, min(x1 - x0, y1 - y0) // 8)
        small = cv2.resize(
            region, (max(1, (x1 - x0) // block), max(1, (y1 - y0) // block)), interpolation=cv2.INTER_AREA
        )
        coarse = cv2.resize(small, (x1 - x0, y1 - y0), interpolation=cv2.INTER_NEAREST)
        smooth = cv2.GaussianBlur(coarse, (0, 0), block / 2)
        pixels[y0:y1, x0:x1] = smooth.reshape(region.shape)
