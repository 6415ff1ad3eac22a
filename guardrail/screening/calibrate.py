"""Thresholds from a deployment's own data: a set's own images, edited by the evaluation's families
(the hard ones included: composites over the user's images, heavy crops, rotations, perspective), are
the positives; the user's images that are not protected (whole, and random patches of them) are
the negatives. Each is scored as the screen scores it: the smallest pHash distance to any reference
(and to its own reference, for a positive), and the most keypoint inliers the keypoint tier finds.
The threshold of each tier is the loosest whose false matches among the negatives stay within the
target rate; the recall it gives is reported per family."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from guardrail.screening.families import FAMILIES, hard_families
from guardrail.screening.hashes import distances
from guardrail.screening.refsets import ReferenceSet
from guardrail.screening.screen import Query, Thresholds, match

MIN_INLIERS = 4
"""The fewest inliers a keypoint threshold may ask for (one similarity transform needs 2 points; 4
keeps chance agreements rare)."""
PATCHES_PER_NEGATIVE = 3


@dataclass
class Calibration:
    refset: str
    target_fpr: float
    positives: int
    negatives: int
    max_distance: int | None
    """The pHash threshold meeting the target (None: even distance 0 matches too many negatives)."""
    min_inliers: int | None
    """The keypoint threshold meeting the target (None: no count does)."""
    fpr: float
    """The false-positive rate of both tiers together among the negatives."""
    recall: float
    by_family: dict[str, dict[str, float]] = field(default_factory=dict)
    """Family -> the recall of phash alone, keypoints alone and both."""

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def calibrate(
    refset: ReferenceSet,
    protected: Sequence[tuple[int, Any]],
    others: Sequence[Any],
    *,
    target_fpr: float = 0.001,
    variants: int = 2,
    seed: int = 0,
    progress: Callable[[], None] = lambda: None,
) -> Calibration:
    """`protected`: (entry index, image) of the set's own images; `others`: images that are not
    protected. `progress` is called once per image scored."""
    rng = random.Random(seed)
    families = families_for(others)
    keypoints_only = Thresholds(max_distance=None, min_inliers=MIN_INLIERS, min_similarity=None, action="flag")
    positives: list[tuple[str, int, int]] = []  # family, distance to its reference, inliers with it
    for index, image in protected:
        for family, edit in families.items():
            for _ in range(variants):
                query = Query(edit(image.convert("RGB"), rng))
                distance = int(distances(query.hashes, refset.hashes[index : index + 1])[0][0])
                found = [m for m in match(query, refset, keypoints_only) if m.reference_id == refset.entries[index].id]
                positives.append((family, distance, int(found[0].score) if found else 0))
                progress()
    negatives: list[tuple[int, int]] = []  # smallest distance to any reference, most inliers with any
    for image in _negatives(others, rng):
        query = Query(image)
        distance = int(distances(query.hashes, refset.hashes)[0].min()) if refset.entries else 64
        counts = [int(m.score) for m in match(query, refset, keypoints_only)]
        negatives.append((distance, max(counts, default=0)))
        progress()
    allowed = int(np.floor(target_fpr * len(negatives)))
    neg_distance = np.array([d for d, _ in negatives]) if negatives else np.zeros(0, int)
    neg_inliers = np.array([k for _, k in negatives]) if negatives else np.zeros(0, int)
    max_distance = next((d for d in range(32, -1, -1) if int((neg_distance <= d).sum()) <= allowed), None)
    min_inliers = next((k for k in range(MIN_INLIERS, 1000) if int((neg_inliers >= k).sum()) <= allowed), None)
    hit_hash = [max_distance is not None and d <= max_distance for _, d, _ in positives]
    hit_keys = [min_inliers is not None and k >= min_inliers for _, _, k in positives]
    hash_false = neg_distance <= (max_distance if max_distance is not None else -1)
    keypoint_false = neg_inliers >= (min_inliers if min_inliers is not None else np.iinfo(np.int64).max)
    false = int((hash_false | keypoint_false).sum())
    by_family: dict[str, dict[str, float]] = {}
    for family in families:
        rows = [i for i, (f, _, _) in enumerate(positives) if f == family]
        if rows:
            by_family[family] = {
                "phash": sum(hit_hash[i] for i in rows) / len(rows),
                "keypoints": sum(hit_keys[i] for i in rows) / len(rows),
                "both": sum(hit_hash[i] or hit_keys[i] for i in rows) / len(rows),
            }
    both = [h or k for h, k in zip(hit_hash, hit_keys, strict=True)]
    return Calibration(
        refset.name,
        target_fpr,
        len(positives),
        len(negatives),
        max_distance,
        min_inliers,
        float(false) / len(negatives) if negatives else 0.0,
        sum(both) / len(both) if both else 0.0,
        by_family,
    )


def families_for(others: Sequence[Any]) -> dict[str, Any]:
    """The edits calibration applies: the evaluation's families and the hard ones, composites pasted
    over the user's own unprotected images (`others`)."""
    if not others:
        return dict(FAMILIES)
    return {**FAMILIES, **hard_families(list(others))}  # a composite converts its background when it uses it


def _negatives(others: Sequence[Any], rng: random.Random) -> list[Any]:
    """Each unprotected image whole, and random square patches of it (a quarter to half its side)."""
    found = []
    for image in others:
        rgb = image.convert("RGB")
        found.append(rgb)
        side = min(rgb.size)
        for _ in range(PATCHES_PER_NEGATIVE):
            patch = rng.randint(max(16, side // 4), max(17, side // 2))
            x, y = rng.randint(0, rgb.width - patch), rng.randint(0, rgb.height - patch)
            found.append(rgb.crop((x, y, x + patch, y + patch)))
    return found


def write_thresholds(policy_file: Any, set_name: str, calibration: Calibration) -> None:
    """Put the calibrated thresholds into the policy file's `screening.sets.<set_name>`, keeping its
    comments and layout (a YAML round trip). Raises ValueError when the policy does not use the set."""
    import io
    from pathlib import Path

    from ruamel.yaml import YAML

    path = Path(policy_file)
    yaml = YAML()
    yaml.preserve_quotes = True
    document = yaml.load(path.read_text(encoding="utf-8"))
    try:
        entry = document["screening"]["sets"][set_name]
    except (KeyError, TypeError):
        raise ValueError(f"{path}: screening.sets has no set {set_name!r} to write thresholds to") from None
    if entry is None:
        document["screening"]["sets"][set_name] = entry = {}
    entry["max_distance"] = calibration.max_distance
    entry["min_inliers"] = calibration.min_inliers
    buffer = io.StringIO()
    yaml.dump(document, buffer)
    path.write_text(buffer.getvalue(), encoding="utf-8")
