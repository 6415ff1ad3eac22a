"""guardrail's imperceptible watermark: a 32-bit token in the luminance of every returned image, which
survives the re-encodes, resizes, crops and colour changes that strip a C2PA manifest.

The method, chosen on measurements (bench/watermark.py; invisible-watermark's dwtDct, dwtDctSvd and
RivaGAN were measured too and missed the goals on a CPU):

- **Spread spectrum, tiled.** One 128-px tile of pseudo-random, band-limited noise (a 32 x 32 grid of
  4-px chips, interpolated in the Fourier domain so the tile wraps seamlessly) is added to the
  luminance over the whole image, at 3 grey levels RMS (PSNR about 38.6 dB). Any crop still holds the
  whole period; folding the image onto one tile sums every repetition, so each chip is read from all
  of them.
- **Synchronisation.** One of the superposed patterns is a fixed sync pattern: a circular
  cross-correlation of the folded image with it gives the crop's offset; when that fails, the
  autocorrelation of the image's noise gives the tile's period, hence the scale of a resized copy.
- **Error correction.** The 66 payload bits (the token, then 34 check bits) are six symbols of a
  biorthogonal first-order Reed-Muller code (Hadamard rows of length 1024 with a sign, 11 bits each),
  each on its own keyed carrier, decoded at maximum likelihood with a fast Hadamard transform (as
  fast as a threaded 1024 x 1024 product, 3.5 times a single-threaded one, and it leaves no BLAS
  threads spinning beside the other stages), with successive interference cancellation between the
  symbols.
- **False detections are bounded by construction.** A payload is accepted only when its 34 check bits
  (a keyed BLAKE2b of the token) agree; an unmarked image decodes to random symbols, so each decoding
  hypothesis passes with probability 2^-34, and a detection tries at most `MAX_HYPOTHESES`: at most
  1.2e-8 false detections per image.

The detector is the residual's normalised correlation, so brightness and contrast changes do not move it.
Rotations are not searched.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from typing import Any

ALGORITHM = "org.guardrail.watermark.ss-tile"
VERSION = 1
NAME = f"{ALGORITHM}.v{VERSION}"
"""The algorithm's name and version, as the audit log and the C2PA soft-binding assertion record it."""

TILE = 128
GRID = 32
CHIPS = GRID * GRID
SYMBOLS = 6
ROW_BITS = 10  # + 1 sign bit per symbol
TOKEN_BITS = 32
CHECK_BITS = SYMBOLS * (ROW_BITS + 1) - TOKEN_BITS  # 34
STRENGTH = 3.0
"""RMS change of the luminance, in grey levels (of 255)."""
MIN_SIDE = 128
"""Images with a shorter side below one tile are not marked: too few pixels carry the token."""
SCALES = 4
"""Candidate periods from the noise's autocorrelation that a resized copy's sync search tries."""
COMMON_SCALES = (0.5, 0.75)
"""Scales a resized copy is decoded at too, exactly: halving and three quarters are the commonest
resizes, and a strong texture can hide the period from the autocorrelation."""
DECODED_SCALES = 3
"""A resized copy is decoded at the scales of its three strongest sync peaks (on a strong texture the
true one is not always the strongest)."""
OFFSETS = 5
"""Each scale is decoded at the offsets of its five strongest sync peaks: on a strong texture (grass,
gravel) the true offset is often not the strongest, and the check bits tell the right one."""
MAX_HYPOTHESES = (1 + DECODED_SCALES + len(COMMON_SCALES)) * OFFSETS * (1 + SYMBOLS)
"""Decodings a detection may try: per scale and offset, the best symbols and then each with one symbol
replaced by its runner-up. With 34 check bits: at most 210 x 2^-34 = 1.2e-8 false detections per
unmarked image."""
_SEED = b"guardrail watermark v1"


@dataclass(frozen=True)
class Detection:
    """A watermark found in an image."""

    token: int
    confidence: float
    """The weakest symbol's correlation, in standard deviations of the other candidates (>= 3.9 is
    rarely reached by chance; every accepted token has also passed its 34 check bits)."""
    scale: float
    """The copy's size relative to the marked image (1.0 unless it was resized)."""
    offset: tuple[int, int]
    """Where the tile starts in the copy, (x, y) in pixels modulo the tile: a crop moves it."""
    algorithm: str = NAME

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def new_token() -> int:
    """A random token (not guessable, so a mark cannot be forged onto another call's record)."""
    import secrets

    return secrets.randbits(TOKEN_BITS)


def embed(pixels: Any, token: int, strength: float = STRENGTH) -> Any:
    """A marked copy of an 8-bit image array (H x W, or H x W x C with RGB first; alpha untouched)."""
    import numpy as np

    if not 0 <= token < 1 << TOKEN_BITS:
        raise ValueError(f"a watermark token is an unsigned {TOKEN_BITS}-bit integer, not {token!r}")
    array = np.asarray(pixels)
    if array.dtype != np.uint8 or array.ndim not in (2, 3):
        raise ValueError(f"embed takes an 8-bit H x W (x C) array, not {array.dtype} {array.shape}")
    import cv2

    code = _code()
    tile = np.rint(code.tile(token, strength))  # pixels are integers: round the mark once
    if array.ndim == 3:  # the same offset on R, G and B (or L of LA); nothing on alpha
        tile = np.repeat(tile[..., None], array.shape[2], axis=2)
        tile[..., 1 if array.shape[2] == 2 else 3 :] = 0
    h, w = array.shape[:2]
    # raised and lowered by two saturating uint8 operations, exactly clip(pixel + mark, 0, 255) without
    # widening the image to 16 bits; a band of one tile's height at a time, which stays in cache
    reps = (1, -(-w // TILE), *((1,) if array.ndim == 3 else ()))
    up, down = (np.ascontiguousarray(np.tile(np.clip(t, 0, 255).astype(np.uint8), reps)[:, :w]) for t in (tile, -tile))
    array = np.ascontiguousarray(array)
    out = np.empty_like(array)
    for top in range(0, h, TILE):
        rows = slice(top, min(h, top + TILE))
        band = out[rows]
        cv2.add(array[rows], up[: len(band)], dst=band)
        cv2.subtract(band, down[: len(band)], dst=band)
    return out


def detect(pixels: Any) -> Detection | None:
    """The token in an image array (8-bit, H x W or H x W x C), or None when no mark is found."""
    import numpy as np

    array = np.asarray(pixels)
    if array.ndim == 3:
        array = array[..., :3] if array.shape[2] >= 3 else array[..., 0]
    if min(array.shape[:2]) < TILE // 4:
        return None
    luma = _luma(array)
    residual = _residual(luma)
    found = _decode(residual, 1.0)
    if found is not None:
        return found
    # a resized copy: the estimated periods, each refined, the strongest first; then the common scales as they are
    refined = sorted((_refined(residual, estimate) for estimate in _scales(residual)), key=lambda c: -c[1])
    for scale in [*(scale for scale, _ in refined[:DECODED_SCALES]), *COMMON_SCALES]:
        resized = _rescaled(luma, scale)  # the payload is read from the image scaled back, not its residual
        if min(resized.shape) >= TILE // 4 and (found := _decode(_residual(resized), scale)) is not None:
            return found
    return None


_REFINE = (0.0, -0.006, 0.006, -0.012, 0.012)
"""Relative steps around an estimated scale: a period off by 1 % drifts by a chip over four tiles."""
_MAX_RESCALED = 5 * TILE
"""The most of a resized copy that is scaled back (upscaling a small copy in full costs the most)."""


def _refined(residual: Any, estimate: float) -> tuple[float, float]:
    """(scale, sync peak) of the step around an estimated scale where the sync pattern stands out most."""
    candidates = [estimate * (1 + step) for step in _REFINE]
    return max(((scale, _sync_peak(_rescaled(residual, scale))) for scale in candidates), key=lambda c: c[1])


def _rescaled(plane: Any, scale: float) -> Any:
    """A plane of a copy resized by `scale`, scaled back to the mark's size (at most 5 x 5 tiles of it)."""
    import cv2

    keep = max(1, int(_MAX_RESCALED * scale))
    h, w = plane.shape
    top, left = max(0, (h - keep) // 2), max(0, (w - keep) // 2)
    window = plane[top : top + keep, left : left + keep]
    return cv2.resize(window, None, fx=1 / scale, fy=1 / scale, interpolation=cv2.INTER_LINEAR)


def detect_image(image: Any) -> Detection | None:
    """detect() for a PIL image in any mode (palette, 16-bit and the rest are converted to RGB first)."""
    import numpy as np

    from guardrail.images import PIXEL_MODES

    if image.mode not in PIXEL_MODES:
        image = image.convert("RGB")
    return detect(np.asarray(image))


def check_bits(token: int) -> int:
    digest = hashlib.blake2b(token.to_bytes(8, "big"), digest_size=8, person=b"guardrail-wm-v1").digest()
    return int.from_bytes(digest, "big") >> (64 - CHECK_BITS)


def _symbols(token: int) -> list[tuple[int, int]]:
    """(Hadamard row, sign) per symbol for a token's payload."""
    payload = token | check_bits(token) << TOKEN_BITS
    out = []
    for j in range(SYMBOLS):
        symbol = payload >> (j * (ROW_BITS + 1)) & ((1 << (ROW_BITS + 1)) - 1)
        out.append((symbol & ((1 << ROW_BITS) - 1), -1 if symbol >> ROW_BITS else 1))
    return out


def _token(symbols: list[tuple[int, int]]) -> int | None:
    """The token these symbols carry, when its check bits agree."""
    payload = 0
    for j, (row, sign) in enumerate(symbols):
        payload |= (row | (1 << ROW_BITS if sign < 0 else 0)) << (j * (ROW_BITS + 1))
    token = payload & ((1 << TOKEN_BITS) - 1)
    return token if payload >> TOKEN_BITS == check_bits(token) else None


class _Code:
    """The fixed patterns: sync and symbol carriers, chip permutations, the chip-to-pixel interpolation
    and the Hadamard matrix. Built once per process from a public seed (anyone may detect)."""

    def __init__(self) -> None:
        import numpy as np

        rng = np.random.default_rng(int.from_bytes(hashlib.sha256(_SEED).digest()[:8], "big"))
        self.carriers = rng.choice(np.array([-1.0, 1.0], np.float32), size=(SYMBOLS + 1, CHIPS))
        self.perms = np.stack([rng.permutation(CHIPS) for _ in range(SYMBOLS)])
        hadamard = np.ones((1, 1), np.float32)
        while len(hadamard) < CHIPS:
            hadamard = np.block([[hadamard, hadamard], [hadamard, -hadamard]])
        self.hadamard = hadamard
        # band-limited, periodic interpolation of the chip grid: the Fourier series of each unit chip
        unit = np.eye(GRID)
        self.interp = (np.fft.irfft(np.fft.rfft(unit, axis=0), n=TILE, axis=0) * (TILE / GRID)).astype(np.float32)
        sync = _product(self.interp, self.carriers[0].reshape(GRID, GRID))
        self.sync_spectrum = np.conj(np.fft.rfft2(sync / sync.std()))

    def chips(self, row: int, sign: int, j: int) -> Any:
        return self.carriers[j + 1] * (sign * self.hadamard[row][self.perms[j]])

    def tile(self, token: int, strength: float) -> Any:
        chips = self.carriers[0].copy()
        for j, (row, sign) in enumerate(_symbols(token)):
            chips += self.chips(row, sign, j)
        tile = _product(self.interp, chips.reshape(GRID, GRID))
        tile *= strength / float(tile.std())
        return tile


@functools.lru_cache(maxsize=1)
def _code() -> _Code:
    return _Code()


def _luma(array: Any) -> Any:
    """Luma (BT.601) in float32, through OpenCV: a BLAS product would leave its threads spinning."""
    import cv2
    import numpy as np

    if array.ndim == 2:
        return array.astype(np.float32)
    return cv2.transform(array.astype(np.float32), np.array([[0.299, 0.587, 0.114]], np.float32))


def _product(left: Any, middle: Any) -> Any:
    """left @ middle @ left.T, without BLAS: these products are too small to gain from BLAS's threads,
    whose spinning after each product slowed a guarded call's other stages by a third on 2 cores
    (bench/full_call.py)."""
    import numpy as np

    return np.einsum("ik,lk->il", np.einsum("ij,jk->ik", left, middle), left)


def _hadamard_transform(vector: Any) -> Any:
    """The Hadamard matrix (Sylvester's order) times a vector, as the fast transform: log2(n) passes
    of sums and differences instead of an n x n product."""
    import numpy as np

    n = len(vector)
    out = vector.reshape(1, n)
    half = 1
    while half < n:
        pairs = out.reshape(-1, 2, half) if half > 1 else out.reshape(-1, 2, 1)
        out = np.concatenate([pairs[:, 0] + pairs[:, 1], pairs[:, 0] - pairs[:, 1]], axis=1)
        half *= 2
    return out.reshape(n)


def _residual(luma: Any) -> Any:
    """The image's fine detail, each neighbourhood scaled to unit energy: the image itself is the noise
    the mark is read against, and textured regions would otherwise drown the flat ones. (Box filters and
    a quarter-size energy map: a Gaussian of the same reach costs five times as much; OpenCV's arithmetic,
    the same result in half numpy's time.)"""
    import cv2

    detail = cv2.subtract(luma, cv2.boxFilter(cv2.boxFilter(luma, -1, (5, 5)), -1, (5, 5)))
    h, w = luma.shape
    energy = cv2.resize(cv2.multiply(detail, detail), (max(1, w // 4), max(1, h // 4)), interpolation=cv2.INTER_AREA)
    energy = cv2.resize(cv2.GaussianBlur(energy, (0, 0), 1), (w, h), interpolation=cv2.INTER_LINEAR)
    return cv2.divide(detail, cv2.sqrt(energy) + 2.0)


def _fold(residual: Any) -> Any:
    """The residual summed onto one tile: every repetition of the mark adds up, the image does not."""
    import numpy as np

    h, w = residual.shape
    padded = np.zeros((-(-h // TILE) * TILE, -(-w // TILE) * TILE), np.float32)
    padded[:h, :w] = residual
    return padded.reshape(padded.shape[0] // TILE, TILE, padded.shape[1] // TILE, TILE).sum(axis=(0, 2))


def _sync(folded: Any) -> Any:
    """Circular cross-correlation of a folded residual with the sync pattern, over every offset."""
    import numpy as np

    return np.fft.irfft2(np.fft.rfft2(folded) * _code().sync_spectrum, s=folded.shape)


def _sync_peak(residual: Any) -> float:
    """How far the best offset's sync correlation stands out, in standard deviations."""
    correlation = _sync(_fold(residual))
    return float((correlation.max() - correlation.mean()) / (correlation.std() or 1.0))


def _decode(residual: Any, scale: float) -> Detection | None:
    """The payload of a residual at the mark's scale, read at each of the strongest sync offsets."""
    import numpy as np

    folded = _fold(residual)
    correlation = _sync(folded).ravel()
    for peak in np.argsort(correlation)[-OFFSETS:][::-1]:
        dy, dx = divmod(int(peak), TILE)
        found = _read(np.roll(folded, (-dy, -dx), axis=(0, 1)))
        if found is not None:
            token, confidence = found
            period = max(1, round(TILE * scale))
            return Detection(
                token, confidence, round(scale, 3), (round(dx * scale) % period, round(dy * scale) % period)
            )
    return None


def _read(folded: Any) -> tuple[int, float] | None:
    """The token in a folded residual aligned on the tile, with its confidence, if its check bits agree."""
    import numpy as np

    code = _code()
    chips = _product(code.interp.T, folded).ravel()
    chips -= (chips @ code.carriers[0]) / CHIPS * code.carriers[0]  # the sync pattern's share
    best: list[tuple[int, int]] = [(0, 1)] * SYMBOLS
    runner_up: list[tuple[int, int]] = [(0, 1)] * SYMBOLS
    scores = [0.0] * SYMBOLS
    share = np.zeros((SYMBOLS, CHIPS), np.float32)
    for _ in range(2):  # successive interference cancellation: each symbol read without the others
        for j in range(SYMBOLS):
            own = chips - share.sum(axis=0) + share[j]
            unspread = np.empty(CHIPS, np.float32)
            unspread[code.perms[j]] = own * code.carriers[j + 1]
            spectrum = _hadamard_transform(unspread)
            magnitude = np.abs(spectrum)
            first, second = (int(i) for i in np.argsort(magnitude)[-2:][::-1])
            best[j] = (first, 1 if spectrum[first] >= 0 else -1)
            runner_up[j] = (second, 1 if spectrum[second] >= 0 else -1)
            rest = float(np.sqrt((np.sum(spectrum**2) - spectrum[first] ** 2) / (CHIPS - 1))) or 1.0
            scores[j] = float(magnitude[first]) / rest
            share[j] = code.chips(*best[j], j) * (magnitude[first] / CHIPS)
    hypotheses = [best] + [[*best[:j], runner_up[j], *best[j + 1 :]] for j in range(SYMBOLS)]
    for hypothesis in hypotheses:
        token = _token(hypothesis)
        if token is not None:
            return token, round(min(scores), 2)
    return None


def _scales(residual: Any) -> list[float]:
    """Candidate scales of a resized copy, strongest first: the tile's period is where the noise's
    autocorrelation peaks along both axes (read from at most the central 512 x 512 pixels)."""
    import cv2
    import numpy as np

    h, w = residual.shape
    size = min(512, h, w)
    top, left = (h - size) // 2, (w - size) // 2
    window = residual[top : top + size, left : left + size]
    power = np.abs(np.fft.rfft2(window - window.mean())).astype(np.float32) ** 2
    power /= cv2.GaussianBlur(power, (0, 0), 3) + 1e-6  # whitened: the tile's comb of lines stands out
    auto = np.fft.irfft2(power, s=window.shape)
    low, high = max(8, int(TILE * 0.3)), min(size // 2, int(TILE * 2.5))
    if high <= low + 2:
        return []
    lags = np.arange(low, high)
    profile = auto[0, lags] + auto[lags, 0] + auto[lags, lags] + auto[lags, -lags]  # both axes, both diagonals
    peaks = [i for i in range(1, len(lags) - 1) if profile[i] >= profile[i - 1] and profile[i] > profile[i + 1]]
    peaks.sort(key=lambda i: -profile[i])
    scales = []
    for i in peaks[:SCALES]:
        a, b, c = profile[i - 1], profile[i], profile[i + 1]
        shift = 0.5 * (a - c) / (a - 2 * b + c) if a - 2 * b + c else 0.0
        scales.append(float(lags[i] + shift) / TILE)
    return scales
