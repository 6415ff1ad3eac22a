"""Matching images against the reference sets a policy names, tier by tier, with each set's
thresholds and action.

Tiers, cheapest first; a reference is reported once, by the first tier that matches it:
  phash      Hamming distance of the pHash (or of the mirror image's, or of either after an opening
             that erases overlaid text) <= max_distance
  clip       cosine similarity of CLIP image embeddings >= min_similarity (when a model is configured)
  keypoints  ORB keypoints that one similarity transform maps onto the reference >= min_inliers,
             checked on at most CANDIDATES references per image: in a larger set, those with the most
             keypoints near the image's (a vote), then the closest by embedding and by hash
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np

from guardrail.errors import ReferenceSetError
from guardrail.policy.decision import Decision, FiredRule
from guardrail.policy.schema import ScreeningSet
from guardrail.screening.hashes import distances, fingerprint
from guardrail.screening.keypoints import Keypoints, detect, inliers, prepare
from guardrail.screening.refsets import ReferenceSet
from guardrail.screening.vectors import index_for

if TYPE_CHECKING:
    from guardrail.screening.embeddings import ImageEmbedder

log = logging.getLogger("guardrail.screening")

CANDIDATES = 16
"""References per image and set that the keypoint tier verifies: bounds its cost on large sets."""


_POLICY_DEFAULTS = ScreeningSet()


@dataclass(frozen=True)
class Thresholds:
    """How close counts as a match, per method (None turns a tier off), and what a match does; the
    defaults are the policy's (ScreeningSet), for callers without a policy (CLI, benchmarks)."""

    max_distance: int | None = _POLICY_DEFAULTS.max_distance
    min_inliers: int | None = _POLICY_DEFAULTS.min_inliers
    min_similarity: float | None = _POLICY_DEFAULTS.min_similarity
    action: str = _POLICY_DEFAULTS.action


@dataclass(frozen=True)
class Match:
    """One image resembling one reference. `score` is a Hamming distance for phash (lower is closer),
    an inlier count for keypoints and a cosine similarity for clip (higher is closer)."""

    set: str
    reference_id: str
    label: str
    method: str
    score: float
    threshold: float
    action: str

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def describe(self) -> str:
        if self.method.startswith("phash"):
            return f"{self.method} distance {self.score:g} <= {self.threshold:g}"
        if self.method.startswith("keypoints"):
            return f"{self.method} {self.score:g} inliers >= {self.threshold:g}"
        return f"{self.method} similarity {self.score:.3f} >= {self.threshold:g}"


class Query:
    """One image's features, each computed once and only when a tier asks for it."""

    def __init__(self, image: Any, embedding: np.ndarray | None = None, hashes: tuple[int, ...] | None = None) -> None:
        self.image, self.embedding = image, embedding
        if hashes is not None:
            self.__dict__["hashes"] = tuple(hashes)  # computed already (the fingerprint registry's)

    @cached_property
    def hashes(self) -> tuple[int, int, int, int]:
        return fingerprint(self.image)

    @cached_property
    def _prepared(self) -> np.ndarray:
        return prepare(self.image)

    @cached_property
    def keypoints(self) -> Keypoints:
        return detect(self._prepared)

    @cached_property
    def mirrored_keypoints(self) -> Keypoints:
        return detect(np.ascontiguousarray(self._prepared[:, ::-1]))


def match(query: Query | Any, refset: ReferenceSet, rule: Thresholds | Any) -> list[Match]:
    """The references of a set that an image matches, closest first within each tier. `rule` is a
    Thresholds or the policy's ScreeningSet (same fields)."""
    if not refset.entries:
        return []
    query = query if isinstance(query, Query) else Query(query)

    def found(index: int, method: str, score: float, threshold: float) -> Match:
        entry = refset.entries[index]
        return Match(refset.name, entry.id, entry.label, method, score, threshold, rule.action)

    distance, mirror = distances(query.hashes, refset.hashes)
    limit = -1 if rule.max_distance is None else rule.max_distance
    hits = np.flatnonzero(distance <= limit)
    matches = [
        found(int(i), "phash-mirror" if mirror[i] else "phash", int(distance[i]), limit)
        for i in hits[np.argsort(distance[hits], kind="stable")]
    ]
    matched = set(hits.tolist())
    large = len(refset.entries) > CANDIDATES
    # in a large set, hash and embedding rank few true candidates beyond their own matches: the keypoint
    # vote does, so each of them contributes only a quarter of the candidates there
    per_ranking = CANDIDATES // 4 if large else CANDIDATES
    # candidates for the keypoint tier, each with the directions worth verifying (None: both)
    order: list[tuple[int, bool | None]] = []
    if refset.embeddings is not None and query.embedding is not None and rule.min_similarity is not None:
        indices, similarity = index_for(refset).search(query.embedding, CANDIDATES)
        for i, s in zip(indices.tolist(), similarity.tolist(), strict=True):
            if s >= rule.min_similarity and i not in matched:
                matches.append(found(i, "clip", round(float(s), 4), rule.min_similarity))
                matched.add(i)
        order += [(i, None) for i in indices.tolist()[:per_ranking]]
    if rule.min_inliers is None:
        return matches
    if large:  # keypoints vote: finds crops and rotations that neither hash nor embedding ranks high
        voted = refset.keypoint_index().vote(query.keypoints, query.mirrored_keypoints, limit=CANDIDATES // 2)
        order = [*voted, *order]
    closest = np.argsort(distance, kind="stable")[: per_ranking + len(matched)].tolist()
    order += [(i, bool(mirror[i]) if large else None) for i in closest]
    checks: dict[int, set[bool]] = {}
    for i, flip in order:
        if i in matched or (i not in checks and len(checks) == CANDIDATES):
            continue
        checks.setdefault(i, set()).update((False, True) if flip is None else (flip,))
    for i, directions in checks.items():
        reference = refset.keypoints(i)
        if len(reference) < rule.min_inliers:
            continue
        for flip in sorted(directions):
            count = inliers(query.mirrored_keypoints if flip else query.keypoints, reference)
            if count >= rule.min_inliers:
                matches.append(found(i, "keypoints-mirror" if flip else "keypoints", count, rule.min_inliers))
                break
    return matches


def screen(
    images: list[Any],
    sets: dict[str, Any],
    refsets: dict[str, ReferenceSet],
    embedder: ImageEmbedder | None = None,
    *,
    each: Callable[..., Iterable[Any]] = map,
    hashes: list[Any] | None = None,
) -> list[list[Match]]:
    """Matches of each image against every set the policy screens with (`sets`: name -> ScreeningSet).
    With an embedder, images are embedded once, in batches, for the sets that hold embeddings.
    `each` maps the per-image work (an executor's map runs images concurrently: hashing, faiss and
    OpenCV release the GIL)."""
    embeddings: list[np.ndarray | None] = [None] * len(images)
    with_vectors = [refsets[name] for name in sets if refsets[name].embeddings is not None]
    if embedder is not None and with_vectors:
        check_embeddings({refset.name: refset for refset in with_vectors}, embedder)
        embeddings = list(embedder.embed_images(images))
    known = hashes or [None] * len(images)
    queries = [Query(image, vector, h) for image, vector, h in zip(images, embeddings, known, strict=True)]

    def one(query: Query) -> list[Match]:
        return [m for name, rule in sets.items() for m in match(query, refsets[name], rule)]

    return list(each(one, queries))


def prepare_indexes(refset: ReferenceSet) -> None:
    """Build the search indexes a set's screening will use, so that screening processes only load them."""
    if len(refset.entries) > CANDIDATES:
        refset.keypoint_index()
    if refset.embeddings is not None:
        index_for(refset)


def check_embeddings(refsets: dict[str, ReferenceSet], embedder: ImageEmbedder | None) -> None:
    """Refuse sets whose embeddings another model made; warn where a set's embeddings go unused."""
    for name, refset in refsets.items():
        if refset.embedding is None:
            continue
        if embedder is None:
            log.warning(
                "reference set %s holds %s embeddings but no embedding model is configured: its CLIP tier is off",
                name,
                refset.embedding,
            )
        elif refset.embedding != embedder.identity:
            raise ReferenceSetError(
                f"{refset.folder}: holds embeddings of {refset.embedding}, the configured model is "
                f"{embedder.identity}; rebuild the set with it (embeddings of two models cannot be compared)"
            )


def apply_matches(decision: Decision, matches: list[list[Match]], stage: str) -> Decision:
    """The decision after screening: a `block` match denies (rule id `screening.<set>`), `flag` and
    `review` matches flag; either way every match is named in the fired rules."""
    fired = []
    for index, found in enumerate(matches):
        for m in found:
            effect = "deny" if m.action == "block" else "flag"
            detail = f"{stage} image {index} resembles {m.label!r} ({m.describe()})"
            message = (
                f"{'blocked' if effect == 'deny' else m.action}: resembles protected {m.set} reference {m.label!r}"
            )
            fired.append(FiredRule(f"screening.{m.set}", effect, message, detail))
    return decision.with_fired(fired)


def summary(matches: list[list[Match]]) -> list[list[dict[str, Any]]]:
    return [[m.as_dict() for m in found] for found in matches]
