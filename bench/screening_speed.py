"""Screening cost with the hash tier: fingerprinting a 512 px image, and searching 10k and 1M hashes.

Goals (issue 6): hashes-only screening <= 5 ms per 512 px image; 1M 64-bit hashes <= 5 ms per query.
Run: .venv/bin/python bench/screening_speed.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import skimage.data
from PIL import Image

from guardrail.screening.hashes import fingerprint, hamming

sys.path.insert(0, str(Path(__file__).parent))

from _stats import median_ms


def main() -> None:
    image = Image.fromarray(skimage.data.astronaut()).convert("RGB")  # 512 x 512
    print(f"fingerprint (trim, pHash, mirror pHash), 512 px: {median_ms(lambda: fingerprint(image)):.2f} ms")
    rng = np.random.default_rng(0)
    query, mirror = fingerprint(image)
    for size in (10_000, 1_000_000):
        hashes = rng.integers(0, 2**63, size=size, dtype=np.uint64)

        def search(h=hashes) -> None:
            best = np.minimum(hamming(query, h), hamming(mirror, h))
            np.flatnonzero(best <= 10)

        print(f"search {size:>9,} hashes (image and mirror): {median_ms(search, 20):.2f} ms")


if __name__ == "__main__":
    main()
