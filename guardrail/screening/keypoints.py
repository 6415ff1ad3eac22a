"""Local keypoint features (OpenCV ORB) and geometric verification (RANSAC): the tier that still
recognises a protected image when it is cropped, rotated, framed in a screenshot or overlaid, where a
global hash no longer does. Used on a bounded number of candidates per image, so its cost stays flat
as reference sets grow."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from guardrail.images import to_pil
from guardrail.screening.threads import single_threaded

KEYPOINTS = "orb512-clahe/v1"
"""Name and version of the keypoint features; a reference set records it and refuses others."""
SIDE = 512
"""Images are scaled so their longer side is this many pixels before features are found."""
FEATURES = 500
_FAST_THRESHOLDS = (20, 10, 5, 2)  # lowered step by step for smooth images with few corners
_RATIO = 0.8  # Lowe's ratio test: a match must be clearly better than the second best
_MAX_HAMMING = 64
_REPROJECTION_PX = 5.0
_NPROBE = 2  # inverted lists searched per keypoint (1 measured no faster on 2 cores)


@dataclass(frozen=True)
class Keypoints:
    """Keypoint positions (float32, n x 2, in the scaled frame) and their ORB descriptors (uint8, n x 32)."""

    points: np.ndarray
    descriptors: np.ndarray

    def __len__(self) -> int:
        return len(self.descriptors)


EMPTY = Keypoints(np.zeros((0, 2), np.float32), np.zeros((0, 32), np.uint8))


def prepare(image: Any) -> np.ndarray:
    """The grayscale image keypoints are found in: SIDE pixels on its longer side, contrast-equalised
    (CLAHE) so that smooth images have corners too."""
    import cv2

    gray = np.asarray(to_pil(image).convert("L"))
    scale = SIDE / max(gray.shape)
    size = (max(1, round(gray.shape[1] * scale)), max(1, round(gray.shape[0] * scale)))
    gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    return cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8)).apply(gray)


def detect(prepared: np.ndarray) -> Keypoints:
    """ORB keypoints of a prepared image, the FAST threshold lowered until there are enough."""
    import cv2

    found: Keypoints = EMPTY
    for threshold in _FAST_THRESHOLDS:
        orb = cv2.ORB.create(nfeatures=FEATURES, fastThreshold=threshold)
        points, descriptors = orb.detectAndCompute(prepared, None)
        if descriptors is not None and len(points) > len(found):
            found = Keypoints(np.array([p.pt for p in points], np.float32), descriptors)
        if len(found) >= FEATURES // 2:
            break
    return found


def extract(image: Any) -> Keypoints:
    """ORB keypoints of an image scaled to SIDE pixels on its longer side."""
    return detect(prepare(image))


def inliers(query: Keypoints, reference: Keypoints) -> int:
    """How many distinct reference keypoints one similarity transform (rotation, scale, shift) maps
    the query's matching keypoints onto: 0-5 for unrelated images, dozens for a copy."""
    return len(agreeing(query, reference)[0])


def agreeing(query: Keypoints, reference: Keypoints) -> tuple[np.ndarray, np.ndarray]:
    """The query's keypoints that one similarity transform maps onto the reference's, and those
    reference keypoints (n x 2 each, in the prepared frames): the evidence a reviewer can look at."""
    import cv2
    import faiss

    none = np.zeros((0, 2), np.float32)
    if len(query) < 2 or len(reference) < 2:
        return none, none
    index = faiss.IndexBinaryFlat(reference.descriptors.shape[1] * 8)  # 4x faster than OpenCV's BFMatcher
    index.add(reference.descriptors)
    with single_threaded():
        distances, neighbours = index.search(query.descriptors, 2)
    nearest, second = distances[:, 0], distances[:, 1]
    good = np.flatnonzero((nearest < _RATIO * second) & (nearest <= _MAX_HAMMING))
    # one query keypoint per reference keypoint, the closest: repeats are not evidence
    order = good[np.lexsort((nearest[good], neighbours[good, 0]))]
    targets = neighbours[order, 0]
    order = order[np.diff(targets, prepend=-1) != 0]
    if len(order) < 4:
        return none, none
    source, target = query.points[order], reference.points[neighbours[order, 0]]
    _, mask = cv2.estimateAffinePartial2D(source, target, method=cv2.RANSAC, ransacReprojThreshold=_REPROJECTION_PX)
    if mask is None:
        return none, none
    keep = mask[:, 0].astype(bool)
    return source[keep], target[keep]


class KeypointIndex:
    """All keypoint descriptors of a set in one binary inverted-file index (faiss IndexBinaryIVF):
    each query keypoint votes for the reference owning its nearest descriptor, and the references
    with the most votes become candidates. This finds a cropped or rotated copy among thousands of
    references, where the global hash no longer ranks it near the top."""

    def __init__(self, index: Any, offsets: np.ndarray) -> None:
        self.index, self.offsets = index, offsets

    @classmethod
    def build(cls, descriptors: np.ndarray, offsets: np.ndarray, *, seed: int = 0) -> KeypointIndex:
        import faiss

        lists = int(np.clip(len(descriptors) // 1000, 16, 4096))
        index = faiss.IndexBinaryIVF(faiss.IndexBinaryFlat(256), 256, lists)
        rng = np.random.default_rng(seed)
        sample = descriptors[rng.choice(len(descriptors), min(len(descriptors), 40 * lists), replace=False)]
        index.train(sample)
        index.add(descriptors)
        index.nprobe = _NPROBE
        return cls(index, offsets)

    @classmethod
    def loader(cls, offsets: np.ndarray) -> Any:
        def load(path: Any) -> KeypointIndex:
            import faiss

            index: Any = faiss.read_index_binary(str(path))
            index.nprobe = _NPROBE
            return cls(index, offsets)

        return load

    def save(self, path: Any) -> None:
        import faiss

        faiss.write_index_binary(self.index, str(path))

    def nearest(self, query: Keypoints) -> tuple[np.ndarray, np.ndarray]:
        """For each query keypoint, the reference owning the nearest descriptor, and whether it is near
        enough to count as a vote."""
        with single_threaded():
            distances, rows = self.index.search(query.descriptors, 1)
        owners = np.searchsorted(self.offsets, rows[:, 0], side="right") - 1
        return owners, (distances[:, 0] <= _MAX_HAMMING) & (rows[:, 0] >= 0)

    def vote(
        self, direct: tuple[np.ndarray, np.ndarray], mirrored: tuple[np.ndarray, np.ndarray], *, limit: int
    ) -> list[tuple[int, bool]]:
        """(reference, whether the mirror image voted for it) for the references with the most query
        keypoints nearest to theirs, given nearest() of the image's keypoints and its mirror image's."""
        size = len(self.offsets) - 1
        plain, flipped = (np.bincount(owners[close], minlength=size) for owners, close in (direct, mirrored))
        votes = np.maximum(plain, flipped)
        top = np.argsort(-votes, kind="stable")[:limit]
        return [(int(i), bool(flipped[i] > plain[i])) for i in top if votes[i] >= 2]
