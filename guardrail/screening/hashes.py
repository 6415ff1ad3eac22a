"""Perceptual fingerprints: pHash (imagehash) of the image with uniform borders trimmed, and of its
mirror image, so that a flipped copy matches too. 64-bit integers, compared by Hamming distance."""

from __future__ import annotations

from typing import Any

import numpy as np

from guardrail.images import to_pil

FINGERPRINT = "phash+mirror/v2"
"""Name and version of the fingerprint; a reference set records it and refuses others."""


def _trim(image: Any, tolerance: int = 12, passes: int = 3) -> Any:
    """Crop uniform borders (padding, letterboxing) before hashing; repeated, so that a frame of
    several bands (a screenshot's title bar, then its window background) comes off too."""
    for _ in range(passes):
        gray = np.asarray(image.convert("L"), dtype=np.int16)
        corner = gray[0, 0]
        rows = np.where((np.abs(gray - corner) > tolerance).any(axis=1))[0]
        cols = np.where((np.abs(gray - corner) > tolerance).any(axis=0))[0]
        if len(rows) < gray.shape[0] // 4 or len(cols) < gray.shape[1] // 4:
            return image  # mostly uniform: nothing meaningful to trim to
        box = (int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)
        if box == (0, 0, gray.shape[1], gray.shape[0]):
            return image
        image = image.crop(box)
    return image


def _phash(image: Any) -> int:
    import imagehash

    bits = imagehash.phash(image).hash.flatten()
    return int("".join("1" if b else "0" for b in bits), 2)


def fingerprint(image: Any) -> tuple[int, int]:
    """(pHash, pHash of the mirror image) of an image, after trimming uniform borders."""
    from PIL import ImageOps

    pil = _trim(to_pil(image).convert("RGB"))
    return _phash(pil), _phash(ImageOps.mirror(pil))


def hamming(query: int, hashes: np.ndarray) -> np.ndarray:
    """Bit differences (0-64, uint8) between one 64-bit hash and many (uint64 array)."""
    return np.bitwise_count(np.bitwise_xor(hashes, np.uint64(query)))
