"""The edits screening is measured against, as families of random augmentations: what a copy of a
protected image goes through (re-encoding, resizing, crops, flips, small rotations, colour changes,
blur, noise, overlaid text, borders, screenshots). bench/screening_eval.py measures the screen on them;
`guardrail refs calibrate` uses them to pick a set's thresholds on its own images."""

from __future__ import annotations

import io
import random
from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageOps

Augment = Callable[[Image.Image, random.Random], Image.Image]


def jpeg(image: Image.Image, rng: random.Random) -> Image.Image:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=rng.randint(20, 95))
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def resize(image: Image.Image, rng: random.Random) -> Image.Image:
    scale = rng.uniform(0.25, 0.9)
    return image.resize((max(16, int(image.width * scale)), max(16, int(image.height * scale))))


def crop(image: Image.Image, rng: random.Random) -> Image.Image:
    cut = rng.uniform(0.05, 0.30)
    w, h = image.size
    left, top = rng.uniform(0, cut) * w, rng.uniform(0, cut) * h
    return image.crop((int(left), int(top), int(left + (1 - cut) * w), int(top + (1 - cut) * h)))


def flip(image: Image.Image, rng: random.Random) -> Image.Image:
    return ImageOps.mirror(image)


def rotate(image: Image.Image, rng: random.Random) -> Image.Image:
    return image.rotate(rng.uniform(-10, 10), resample=Image.Resampling.BILINEAR, expand=False)


def light(image: Image.Image, rng: random.Random) -> Image.Image:
    image = ImageEnhance.Brightness(image).enhance(rng.uniform(0.7, 1.3))
    return ImageEnhance.Contrast(image).enhance(rng.uniform(0.7, 1.3))


def gray(image: Image.Image, rng: random.Random) -> Image.Image:
    return image.convert("L").convert("RGB")


def blur(image: Image.Image, rng: random.Random) -> Image.Image:
    return image.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 2.5)))


def noise(image: Image.Image, rng: random.Random) -> Image.Image:
    array = np.asarray(image, dtype=np.float32)
    noisy = array + np.random.default_rng(rng.randint(0, 2**31)).normal(0, rng.uniform(4, 16), array.shape)
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def text(image: Image.Image, rng: random.Random) -> Image.Image:
    out = image.copy()
    draw = ImageDraw.Draw(out)
    w, h = out.size
    for _ in range(3):
        draw.text((rng.uniform(0, w * 0.7), rng.uniform(0, h * 0.9)), "SAMPLE © 2026", fill=(255, 255, 255))
    return out


def border(image: Image.Image, rng: random.Random) -> Image.Image:
    pad = int(min(image.size) * rng.uniform(0.03, 0.15))
    return ImageOps.expand(image, border=pad, fill=rng.choice([(255, 255, 255), (0, 0, 0), (128, 128, 128)]))


def screenshot(image: Image.Image, rng: random.Random) -> Image.Image:
    """The image inside a larger canvas with a title bar, like a screenshot of a viewer."""
    w, h = image.size
    canvas = Image.new("RGB", (int(w * 1.3), int(h * 1.35)), (240, 240, 240))
    ImageDraw.Draw(canvas).rectangle((0, 0, canvas.width, int(h * 0.08)), fill=(60, 60, 70))
    canvas.paste(image, (int(w * 0.15), int(h * 0.2)))
    return canvas


FAMILIES: dict[str, Augment] = {
    "jpeg": jpeg, "resize": resize, "crop": crop, "flip": flip, "rotate": rotate, "brightness/contrast": light,
    "grayscale": gray, "blur": blur, "noise": noise, "text": text, "border": border, "screenshot": screenshot,
}  # fmt: skip
EASY = ("jpeg", "resize", "brightness/contrast", "blur", "grayscale", "noise", "text", "flip")


def hard_families(backgrounds: list[Image.Image]) -> dict[str, Augment]:
    """The shapes a protected image takes inside a generated picture, beyond FAMILIES (issue 16): pasted
    into another photo (`backgrounds`) at 20-50 % of its width, cropped to 40-60 % of each side, rotated
    by up to 90 degrees, seen in perspective."""

    def composite(image: Image.Image, rng: random.Random) -> Image.Image:
        share = rng.uniform(0.2, 0.5)
        width = min(1600, int(image.width / share))
        background = rng.choice(backgrounds).convert("RGB")
        height = max(
            int(width * background.height / background.width), int(image.height * width / image.width * share) + 1
        )
        canvas = background.resize((width, height))
        pasted = image.convert("RGB").resize(
            (int(width * share), max(1, int(image.height * width * share / image.width)))
        )
        x = rng.randint(0, max(0, width - pasted.width))
        y = rng.randint(0, max(0, height - pasted.height))
        canvas.paste(pasted, (x, y))
        return canvas

    def heavy_crop(image: Image.Image, rng: random.Random) -> Image.Image:
        w, h = image.size
        keep_w, keep_h = rng.uniform(0.4, 0.6), rng.uniform(0.4, 0.6)
        left, top = rng.uniform(0, 1 - keep_w) * w, rng.uniform(0, 1 - keep_h) * h
        return image.crop((int(left), int(top), int(left + keep_w * w), int(top + keep_h * h)))

    def rotate_90(image: Image.Image, rng: random.Random) -> Image.Image:
        fill = rng.choice([(255, 255, 255), (0, 0, 0), (128, 128, 128)])
        return image.convert("RGB").rotate(
            rng.uniform(-90, 90), resample=Image.Resampling.BILINEAR, expand=True, fillcolor=fill
        )

    def perspective(image: Image.Image, rng: random.Random) -> Image.Image:
        w, h = image.size
        corners = [(0, 0), (w, 0), (w, h), (0, h)]
        moved = [(x + rng.uniform(-0.15, 0.15) * w, y + rng.uniform(-0.15, 0.15) * h) for x, y in corners]
        return image.convert("RGB").transform(
            (w, h), Image.Transform.PERSPECTIVE, _perspective_coefficients(corners, moved), Image.Resampling.BILINEAR
        )

    return {
        "composite 20-50%": composite,
        "crop to 40-60%": heavy_crop,
        "rotate to 90 deg": rotate_90,
        "perspective": perspective,
    }


def _perspective_coefficients(
    target: Sequence[tuple[float, float]], source: Sequence[tuple[float, float]]
) -> list[float]:
    """PIL's 8 perspective coefficients mapping each output corner in `target` to `source`."""
    rows = []
    for (x, y), (u, v) in zip(target, source, strict=True):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
    solution = np.linalg.solve(np.array(rows, float), np.array([c for point in source for c in point], float))
    return [float(c) for c in solution]
