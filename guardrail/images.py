"""Fingerprints of images in the forms pipelines take and return (PIL, numpy, torch)."""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path
from typing import Any

from guardrail.errors import ImageTooLarge, InvalidImage


def is_image(value: Any) -> bool:
    """True for a PIL image, a numpy array or a torch tensor (without importing torch)."""
    module = type(value).__module__
    return module.startswith("PIL.") or module == "numpy" or module.startswith("torch")


def image_sha256(image: Any) -> str:
    """SHA-256 over an image's pixels and shape, so the same pixels hash the same in any container."""
    if type(image).__module__.startswith("PIL."):
        digest = hashlib.sha256(f"pil:{image.mode}:{image.width}x{image.height}:".encode())
        digest.update(image.tobytes())
        return digest.hexdigest()
    if type(image).__module__.startswith("torch"):
        image = image.detach().cpu().contiguous().numpy()
    import numpy as np

    array = np.ascontiguousarray(image)
    digest = hashlib.sha256(f"array:{array.dtype.str}:{'x'.join(map(str, array.shape))}:".encode())
    digest.update(array.data)  # the pixels, not a copy of them
    return digest.hexdigest()


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


MAX_IMAGE_BYTES = 50 * 1024 * 1024
MAX_IMAGE_PIXELS = 64 * 1024 * 1024
SOURCE_KEY = "guardrail.source"
"""Key in a PIL image's .info holding (bytes, mime type) of the file it was opened from."""
MIME = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}


def read_limited(path: str | Path, max_bytes: int = MAX_IMAGE_BYTES) -> bytes:
    """A file's bytes, refusing files over `max_bytes` before reading them."""
    p = Path(path)
    if not p.is_file():
        raise InvalidImage(f"{p}: not a file")
    size = p.stat().st_size
    if size > max_bytes:
        raise ImageTooLarge(f"{p}: {size} bytes is over the {max_bytes}-byte limit")
    return p.read_bytes()


def open_image(
    source: str | Path | bytes,
    *,
    max_bytes: int = MAX_IMAGE_BYTES,
    max_pixels: int = MAX_IMAGE_PIXELS,
    name: str | None = None,
) -> Any:
    """Open an image from a file or bytes, size-limited before decoding (no decompression bombs).
    Raises ImageTooLarge, or InvalidImage for anything that is not a whole image (empty, truncated,
    corrupt, another kind of file); messages name the file (or `name`).

    The image remembers the bytes it came from, so a C2PA manifest they carry can become ingredient
    provenance when the image is passed to a guarded img2img, inpaint or ControlNet call.
    """
    import io

    from PIL import Image

    label = name or (str(source) if not isinstance(source, bytes) else "image")
    data = source if isinstance(source, bytes) else read_limited(source, max_bytes)
    if len(data) > max_bytes:
        raise ImageTooLarge(f"{label}: {len(data)} bytes is over the {max_bytes}-byte limit")
    width, height, kind = probe_image(data, label)
    if width * height > max_pixels:
        raise ImageTooLarge(f"{label}: {width}x{height} is over the {max_pixels}-pixel limit")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit is checked above
            image = Image.open(io.BytesIO(data))
            image.load()
    except Exception as exc:  # PIL raises OSError, ValueError, SyntaxError, struct.error ... for bad data
        raise InvalidImage(f"{label}: the image cannot be decoded ({type(exc).__name__}: {exc})") from None
    image.info[SOURCE_KEY] = (data, MIME.get(kind, f"image/{kind.lower()}"))
    return image


def opened_from(image: Any) -> tuple[bytes, str] | None:
    """The file bytes and MIME type an image was opened from by open_image (None for any other image)."""
    info = getattr(image, "info", None)
    source = info.get(SOURCE_KEY) if isinstance(info, dict) else None
    return source if isinstance(source, tuple) else None


def probe_image(data: bytes, name: str = "image") -> tuple[int, int, str]:
    """Width, height and format from an image's header, without decoding its pixels. Raises
    InvalidImage when the bytes are no image PIL can read."""
    import io

    from PIL import Image

    if not data:
        raise InvalidImage(f"{name}: the file is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as probe:  # reads the header only
                return probe.size[0], probe.size[1], probe.format or ""
    except Image.DecompressionBombError as exc:  # PIL's own, larger limit: still too large for guardrail
        raise ImageTooLarge(f"{name}: {exc}") from None
    except Exception as exc:
        raise InvalidImage(f"{name}: not an image guardrail can read ({type(exc).__name__}: {exc})") from None


def to_pil(image: Any) -> Any:
    """A PIL image from a pipeline output (PIL, numpy HWC in [0, 1] or uint8, torch CHW in [0, 1])."""
    from PIL import Image

    if type(image).__module__.startswith("PIL."):
        return image
    import numpy as np

    if type(image).__module__.startswith("torch"):
        image = image.detach().float().cpu().numpy().transpose(1, 2, 0)
    array = np.asarray(image)
    if array.dtype != np.uint8:
        array = (np.clip(array, 0, 1) * 255).round().astype(np.uint8)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    return Image.fromarray(array)


def encode(image: Any, fmt: str, *, quality: int = 95) -> bytes:
    """Encode an image as PNG, JPEG or WebP bytes (nothing else is written). PNG goes through fpng when
    it is installed (lossless, about 10x faster than Pillow's fastest level, a few % larger)."""
    import io

    pil = to_pil(image)
    if fmt == "PNG":
        return encode_png(pil)
    buffer = io.BytesIO()
    pil.convert("RGB").save(buffer, fmt, quality=quality)
    return buffer.getvalue()


def encode_png(image: Any, *, fast: bool = True) -> bytes:
    """Lossless PNG bytes of a PIL image: fpng for 8-bit RGB and RGBA (when `fast` and installed), else
    Pillow at compression level 1. fpng is young: any failure falls back to Pillow."""
    import io

    if fast and image.mode in ("RGB", "RGBA"):
        try:
            import fpng
            import numpy as np

            return bytes(fpng.from_ndarray(np.ascontiguousarray(np.asarray(image))))
        except Exception:  # not installed, or it refused this image: Pillow encodes it
            pass
    buffer = io.BytesIO()
    image.save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


PIXEL_MODES = ("RGB", "RGBA", "L", "LA")
"""PIL modes the marking stages write into (8 bits per channel)."""


def pixels_of(image: Any, *, writable: bool = True) -> tuple[Any, str | None]:
    """An image's pixels as an 8-bit H x W (x C) array (a view where the image is one), or (None, why
    they cannot be: a pixel format the marking stages do not write). A caller that only reads them
    says `writable=False` and spares a PIL image's copy."""
    import numpy as np

    module = type(image).__module__
    if module.startswith("PIL."):
        if image.mode not in PIXEL_MODES:
            return None, f"PIL mode {image.mode} cannot be marked or labelled (8-bit RGB, RGBA, L and LA can)"
        return (np.array(image) if writable else np.asarray(image)), None  # PIL's own buffer is read-only to numpy
    if module.startswith("torch"):
        if image.ndim != 3 or not image.is_floating_point():
            return (
                None,
                f"a {image.dtype} tensor of shape {tuple(image.shape)} cannot be marked or labelled (float CxHxW can)",
            )
        image = image.detach().float().cpu().numpy().transpose(1, 2, 0)
    array = np.asarray(image)
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (1, 3, 4)):
        return None, f"an array of shape {array.shape} cannot be marked or labelled (H x W x 1, 3 or 4 can)"
    if not array.flags.writeable:
        return None, "a read-only array cannot be marked or labelled"
    if array.dtype == np.uint8:
        return array, None
    if array.dtype.kind != "f":
        return None, f"{array.dtype} pixels cannot be marked or labelled (uint8 or float in [0, 1] can)"
    return (np.clip(array, 0, 1) * 255).round().astype(np.uint8), None


def write_pixels(image: Any, marked: Any) -> None:
    """Put changed pixels (as pixels_of returned them) back into the caller's own image object."""
    import numpy as np

    module = type(image).__module__
    if module.startswith("PIL."):
        image.frombytes(np.ascontiguousarray(marked).tobytes())
    elif module.startswith("torch"):
        import torch

        values = torch.from_numpy(marked.transpose(2, 0, 1).astype(np.float32) / 255)
        image.copy_(values.to(dtype=image.dtype, device=image.device))
    elif image.dtype == np.uint8:
        image[...] = marked
    else:
        image[...] = marked.astype(image.dtype) / 255
