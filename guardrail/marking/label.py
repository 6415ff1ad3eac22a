"""The visible label: text drawn onto an image (an explicit label, as China's GB 45438-2025 asks of
AI-generated images), large enough to read, on a dark band so that it reads on any background."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

MARGIN = 0.5
"""The band's padding and the distance from the image's edges, as a share of the text's height."""


def font_problem(font: str) -> str | None:
    """Why a font file cannot draw labels (None when it can)."""
    path = Path(font)
    if not path.is_file():
        return f"font file {font!r} does not exist (a path to a .ttf / .otf file, relative to the working directory)"
    try:
        _font(str(path.resolve()), 12)
    except OSError as exc:
        return f"font file {font!r} cannot be read as a TrueType / OpenType font ({exc})"
    return None


@functools.lru_cache(maxsize=32)
def _font(path: str | None, size: int) -> Any:
    from PIL import ImageFont

    return ImageFont.load_default(size=size) if path is None else ImageFont.truetype(path, size)


def draw_label(
    pixels: Any, text: str, *, position: str = "bottom-right", min_size_pct: float = 5.0, font: str | None = None
) -> dict[str, Any]:
    """Draw `text` onto an 8-bit image array in place; returns what was drawn (text height and box in
    pixels). The text (its inked height) is at least `min_size_pct` % of the image's shorter side;
    raises ValueError when text that tall does not fit the image's width."""
    import math

    import numpy as np
    from PIL import Image, ImageDraw

    array = np.asarray(pixels)
    height, width = array.shape[:2]
    target = max(6, math.ceil(min(width, height) * min_size_pct / 100))
    path = None if font is None else str(Path(font).resolve())
    size = target
    face = _font(path, size)
    left, top, right, bottom = face.getbbox(text)
    while bottom - top < target and size < 4 * target:  # a font's size is not its glyphs' height
        size += 1
        face = _font(path, size)
        left, top, right, bottom = face.getbbox(text)
    pad = math.ceil(MARGIN * size)
    if right - left + 2 * pad > width or bottom - top + 2 * pad > height:
        raise ValueError(
            f"the label {text!r} at {min_size_pct:g} % of the shorter side ({target} px) does not fit a "
            f"{width}x{height} image: shorten the text or lower min_size_pct"
        )
    box_w, box_h = right - left + 2 * pad, bottom - top + 2 * pad
    x = pad if position.endswith("left") else width - box_w - pad
    y = pad if position.startswith("top") else height - box_h - pad
    x, y = max(0, x), max(0, y)
    plane = array[..., 0] if array.ndim == 3 and array.shape[2] == 1 else array
    canvas = Image.fromarray(plane)  # L, LA, RGB or RGBA from the shape
    mode = canvas.mode
    band = Image.new("RGBA", canvas.size, (0, 0, 0, 0))
    ImageDraw.Draw(band).rectangle((x, y, x + box_w, y + box_h), fill=(0, 0, 0, 160))
    ImageDraw.Draw(band).text((x + pad - left, y + pad - top), text, font=face, fill=(255, 255, 255, 255))
    drawn = Image.alpha_composite(canvas.convert("RGBA"), band).convert(mode)
    array[...] = np.asarray(drawn).reshape(array.shape)
    # the band as a mapping: a manifest's CBOR would turn a list of small integers into a byte string
    band_box = {"x": x, "y": y, "width": box_w, "height": box_h}
    return {"text": text, "position": position, "text_height_px": bottom - top, "font_size_px": size, "band": band_box}
