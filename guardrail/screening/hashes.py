"""Perceptual fingerprints: pHash (imagehash) of the image with uniform borders trimmed, of its mirror
image, so that a flipped copy matches too, and the same two of the image after a grayscale opening,
which erases thin bright strokes (captions, watermark text) before hashing. 64-bit integers, compared
by Hamming distance."""

from __future__ import annotations

from typing import Any

import numpy as np

from guardrail.images import to_pil

FINGERPRINT = "phash+mirror+opened/v3"
"""Name and version of the fingerprint; a reference set records it and refuses others."""
COLUMNS = ("phash", "phash-mirror", "opened", "opened-mirror")
"""The hashes of one image, in the order fingerprint() returns them and a reference set stores them."""
_SIDE = 32
"""pHash's working size: the DCT of a 32 x 32 grayscale image, of which the lowest 8 x 8 make the bits."""
_OPENING = 3
"""Kernel side in pixels: bright strokes narrower than this vanish from the opened image."""


def _trim(gray: np.ndarray, tolerance: int = 12, passes: int = 3) -> np.ndarray:
    """Crop uniform borders (padding, letterboxing) before hashing; repeated, so that a frame of
    several bands (a screenshot's title bar, then its window background) comes off too."""
    for _ in range(passes):
        differs = np.abs(gray.astype(np.int16) - int(gray[0, 0])) > tolerance
        rows, cols = np.flatnonzero(differs.any(axis=1)), np.flatnonzero(differs.any(axis=0))
        if len(rows) < gray.shape[0] // 4 or len(cols) < gray.shape[1] // 4:
            return gray  # mostly uniform: nothing meaningful to trim to
        if (rows[0], cols[0], rows[-1] + 1, cols[-1] + 1) == (0, 0, *gray.shape):
            return gray
        gray = gray[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    return gray


def _phash(small: np.ndarray) -> int:
    import imagehash
    from PIL import Image

    bits = imagehash.phash(Image.fromarray(small), hash_size=8, highfreq_factor=_SIDE // 8).hash
    return int.from_bytes(np.packbits(bits).tobytes(), "big")


def _shrink(gray: np.ndarray) -> np.ndarray:
    """The image at the side pHash works on (Lanczos, as imagehash resizes); shrunk once, so the
    mirror's hash costs only a flip. Pillow's reducing_gap=3 first reduces by a whole factor: a third
    of the time, and the same accuracy in bench/screening_eval.py (box-filter shrinking lost some)."""
    from PIL import Image

    resized = Image.fromarray(gray).resize((_SIDE, _SIDE), Image.Resampling.LANCZOS, reducing_gap=3.0)
    return np.asarray(resized)


def fingerprint(image: Any) -> tuple[int, int, int, int]:
    """The hashes named in COLUMNS of an image, after trimming uniform borders. Text drawn over a
    small or low-contrast image moves its pHash by 14-28 bits; the opened image's, by 0-10."""
    import cv2

    gray = _trim(np.asarray(to_pil(image).convert("L")))
    opened = cv2.morphologyEx(gray, cv2.MORPH_OPEN, np.ones((_OPENING, _OPENING), np.uint8))
    small, small_opened = _shrink(gray), _shrink(opened)
    return (
        _phash(small),
        _phash(np.ascontiguousarray(small[:, ::-1])),
        _phash(small_opened),
        _phash(np.ascontiguousarray(small_opened[:, ::-1])),
    )


def hamming(query: int, hashes: np.ndarray) -> np.ndarray:
    """Bit differences (0-64, uint8) between one 64-bit hash and many (uint64 array)."""
    return np.bitwise_count(np.bitwise_xor(hashes, np.uint64(query)))


_CHUNK = 16_384
"""References compared per step: the temporaries stay in cache, which makes four comparisons per
reference cost about 1.2 times what two cost in one pass over a large set."""


def distances(query: tuple[int, ...], references: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each reference (rows of COLUMNS; fastest in column-major order), the smallest Hamming
    distance of an image's fingerprint to it: the image or its mirror against the reference, the
    opened image or its mirror against the opened reference. Also whether that distance is the
    mirror's (a flipped copy)."""
    n = len(references)
    direct, mirror = np.empty(n, np.uint8), np.empty(n, np.uint8)
    xored, counted = np.empty(min(n, _CHUNK), np.uint64), np.empty(min(n, _CHUNK), np.uint8)
    image, mirrored, opened, opened_mirrored = (np.uint64(h) for h in query)
    for start in range(0, n, _CHUNK):
        stop = min(n, start + _CHUNK)
        x, c = xored[: stop - start], counted[: stop - start]
        plain, opened_refs = references[start:stop, 0], references[start:stop, 2]
        for out, (plain_query, opened_query) in (
            (direct[start:stop], (image, opened)),
            (mirror[start:stop], (mirrored, opened_mirrored)),
        ):
            np.bitwise_count(np.bitwise_xor(plain, plain_query, out=x), out=out)
            np.bitwise_count(np.bitwise_xor(opened_refs, opened_query, out=x), out=c)
            np.minimum(out, c, out=out)
    flipped = mirror < direct
    return np.minimum(direct, mirror, out=direct), flipped
