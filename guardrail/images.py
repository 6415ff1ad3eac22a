"""Fingerprints of images in the forms pipelines take and return (PIL, numpy, torch)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any


def is_image(value: Any) -> bool:
    """True for a PIL image, a numpy array or a torch tensor (without importing torch)."""
    module = type(value).__module__
    return module.startswith("PIL.") or module == "numpy" or module.startswith("torch")


def image_sha256(image: Any) -> str:
    """SHA-256 over an image's pixels and shape, so the same pixels hash the same in any container."""
    if type(image).__module__.startswith("PIL."):
        header = f"pil:{image.mode}:{image.width}x{image.height}:".encode()
        return hashlib.sha256(header + image.tobytes()).hexdigest()
    if type(image).__module__.startswith("torch"):
        image = image.detach().cpu().contiguous().numpy()
    import numpy as np

    array = np.ascontiguousarray(image)
    header = f"array:{array.dtype.str}:{'x'.join(map(str, array.shape))}:".encode()
    return hashlib.sha256(header + array.tobytes()).hexdigest()


def image_size(image: Any) -> tuple[int | None, int | None]:
    """(width, height) where it can be read."""
    if type(image).__module__.startswith("PIL."):
        return image.width, image.height
    shape = tuple(getattr(image, "shape", ()))
    if type(image).__module__.startswith("torch") and len(shape) >= 2:
        return int(shape[-1]), int(shape[-2])  # (..., C, H, W)
    if len(shape) == 3 and shape[-1] in (1, 3, 4):
        return int(shape[1]), int(shape[0])  # (H, W, C)
    if len(shape) >= 2:
        return int(shape[-1]), int(shape[-2])
    return None, None


def split_images(value: Any) -> list[Any]:
    """A pipeline's images as a list: lists stay, batched arrays and tensors split on their first axis."""
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return [item for v in value for item in split_images(v)]
    shape = getattr(value, "shape", None)
    if shape is not None and len(shape) == 4:
        return [value[i] for i in range(shape[0])]
    return [value]


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes, read in chunks (weights can be gigabytes)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()
