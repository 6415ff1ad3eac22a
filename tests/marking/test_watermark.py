"""The watermark itself: its token reads back after the edits the goals name, never from an unmarked
image, and the check bits refuse any other payload. Real photos from scikit-image (bench/watermark.py
measures the rates over hundreds of views)."""

import io
import random

import numpy as np
import pytest
import skimage.data
from PIL import Image, ImageEnhance

from guardrail.marking import watermark

# photos whose texture leaves a wide margin: these tests assert on every token drawn (the bench measures
# the rates on harder views: flat drawings and grass, gravel and brick textures)
PHOTOS = ("coffee", "chelsea", "rocket", "moon")


def photo(name: str, size: int = 512) -> np.ndarray:
    array = getattr(skimage.data, name)()
    image = Image.fromarray(array).convert("RGB")
    return np.asarray(image.resize((size, size), Image.BICUBIC))


def jpeg(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


EDITS = {
    "jpeg q50": lambda im: jpeg(im, 50),
    "resize 50%": lambda im: im.resize((im.width // 2, im.height // 2), Image.BICUBIC),
    "brightness +20%": lambda im: ImageEnhance.Brightness(im).enhance(1.2),
    "contrast -20%": lambda im: ImageEnhance.Contrast(im).enhance(0.8),
    "crop 10%": lambda im: im.crop((31, 20, 31 + 461, 20 + 461)),
    "crop 10% + jpeg q50": lambda im: jpeg(im.crop((7, 44, 7 + 461, 44 + 461)), 50),
}


@pytest.mark.parametrize("name", PHOTOS)
def test_the_token_reads_back_after_each_edit(name: str) -> None:
    original = photo(name)
    token = watermark.new_token()
    marked = watermark.embed(original, token)
    error = np.mean((marked.astype(np.float64) - original) ** 2)
    assert 10 * np.log10(255**2 / error) >= 38  # imperceptible by the goal's measure
    found = watermark.detect(marked)
    assert found is not None and found.token == token and found.scale == 1.0 and found.offset == (0, 0)
    for edit, apply in EDITS.items():
        copy = watermark.detect(np.asarray(apply(Image.fromarray(marked))))
        assert copy is not None and copy.token == token, edit
    halved = watermark.detect(np.asarray(EDITS["resize 50%"](Image.fromarray(marked))))
    assert halved is not None and abs(halved.scale - 0.5) < 0.01
    cropped = watermark.detect(np.asarray(EDITS["crop 10%"](Image.fromarray(marked))))
    assert cropped is not None and cropped.offset == ((128 - 31) % 128, (128 - 20) % 128)


def test_grayscale_and_alpha_images_are_marked_in_their_colour_planes_only() -> None:
    gray = photo("camera")[..., 0]
    token = watermark.new_token()
    marked = watermark.embed(gray, token)
    assert marked.shape == gray.shape and watermark.detect(marked).token == token
    rgba = np.dstack([photo("coffee"), np.full((512, 512), 77, np.uint8)])
    marked = watermark.embed(rgba, token)
    assert (marked[..., 3] == 77).all() and watermark.detect(marked).token == token


def test_unmarked_images_are_never_detected() -> None:
    """Views of photos (crops, scales, edits), flat and noise images: no token is read from any."""
    rng = random.Random(5)
    names = ["astronaut", "coffee", "chelsea", "rocket", "camera", "moon", "grass", "gravel", "brick", "coins"]
    photos = [Image.fromarray(getattr(skimage.data, n)()).convert("RGB") for n in names]
    found = []
    for i in range(120):
        image = photos[i % len(photos)]
        side = int(min(image.size) * rng.uniform(0.5, 1))
        view = image.crop((0, 0, side, side)).resize((rng.choice((256, 384, 512)),) * 2)
        view = list(EDITS.values())[i % len(EDITS)](view)
        found.append(watermark.detect(np.asarray(view)))
    noise = np.random.default_rng(0).integers(0, 256, (512, 512, 3), dtype=np.uint8)
    found += [watermark.detect(noise), watermark.detect(np.full((512, 512, 3), 128, np.uint8))]
    assert found == [None] * len(found)


def test_a_payload_whose_check_bits_disagree_is_refused() -> None:
    for token in (0, 1, 0xFFFFFFFF, watermark.new_token()):
        symbols = watermark._symbols(token)
        assert watermark._token(symbols) == token
        for j in range(watermark.SYMBOLS):
            row, sign = symbols[j]
            changed = [*symbols[:j], ((row + 1) % 1024, sign), *symbols[j + 1 :]]
            assert watermark._token(changed) is None
            assert watermark._token([*symbols[:j], (row, -sign), *symbols[j + 1 :]]) is None


def test_bad_arguments_are_refused_clearly() -> None:
    with pytest.raises(ValueError, match="32-bit"):
        watermark.embed(photo("coffee", 128), 1 << 32)
    with pytest.raises(ValueError, match="8-bit"):
        watermark.embed(photo("coffee", 128).astype(np.float32), 1)
    assert watermark.detect(np.zeros((16, 16, 3), np.uint8)) is None  # too small to hold a mark


def test_the_fast_hadamard_transform_is_the_matrix_product() -> None:
    vector = np.random.default_rng(3).standard_normal(watermark.CHIPS).astype(np.float32)
    expected = watermark._code().hadamard @ vector
    np.testing.assert_allclose(watermark._hadamard_transform(vector), expected, atol=1e-3)


@pytest.mark.parametrize("shape", [(300, 257, 3), (256, 256, 4), (200, 300), (200, 300, 1), (130, 140, 2)])
def test_embedding_adds_the_mark_with_clipping_and_leaves_alpha(shape: tuple[int, ...]) -> None:
    """The saturating uint8 path gives exactly clip(pixel + mark, 0, 255) on the colour channels."""
    pixels = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
    pixels[:20] = 255  # saturated rows: the clip matters
    pixels[20:40] = 0
    marked = watermark.embed(pixels, 99)
    tile = np.rint(watermark._code().tile(99, watermark.STRENGTH)).astype(np.int16)
    h, w = shape[:2]
    pattern = np.tile(tile, (-(-h // watermark.TILE), -(-w // watermark.TILE)))[:h, :w]
    colour = (1 if shape[2] == 2 else min(3, shape[2])) if len(shape) == 3 else None  # LA: L only
    wide = pixels.astype(np.int16)
    if colour is None:
        expected = np.clip(wide + pattern, 0, 255)
    else:
        expected = wide.copy()
        expected[..., :colour] = np.clip(wide[..., :colour] + pattern[..., None], 0, 255)
    assert marked.shape == pixels.shape and marked.dtype == np.uint8
    assert np.array_equal(marked, expected.astype(np.uint8))
