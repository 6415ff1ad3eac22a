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
from guardrail.workers import cores, spread

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
    def prepared(self) -> np.ndarray:
        return prepare(self.image)

    @cached_property
    def keypoints(self) -> Keypoints:
        return detect(self.prepared)

    @cached_property
    def mirrored_keypoints(self) -> Keypoints:
        return detect(np.ascontiguousarray(self.prepared[:, ::-1]))

    def directions(self, flip: bool) -> Keypoints:
        return self.mirrored_keypoints if flip else self.keypoints


@dataclass
class _Plan:
    """One image against one set: the matches of the cheap tiers, and the references (with the
    directions, mirrored or not) that the keypoint tier verifies."""

    query: Query
    refset: ReferenceSet
    rule: Any
    matches: list[Match]
    checks: dict[int, set[bool]]

    def found(self, index: int, method: str, score: float, threshold: float) -> Match:
        entry = self.refset.entries[index]
        return Match(self.refset.name, entry.id, entry.label, method, score, threshold, self.rule.action)


def match(query: Query | Any, refset: ReferenceSet, rule: Thresholds | Any) -> list[Match]:
    """The references of a set that an image matches, closest first within each tier. `rule` is a
    Thresholds or the policy's ScreeningSet (same fields)."""
    query = query if isinstance(query, Query) else Query(query)
    return _match_all([(query, refset, rule)])[0]


def _match_all(
    jobs: list[tuple[Query, ReferenceSet, Any]], each: Callable[..., Iterable[Any]] = map
) -> list[list[Match]]:
    """The matches of each (image, set, rule). The keypoint tier's work is done in rounds, each
    spread over `each`: features (the image and its mirror image apart), votes (each direction
    apart), verifications (in chunks); so that one large image uses every core as four small ones do."""
    keyed = [(q, r) for q, r, rule in jobs if r.entries and rule.min_inliers is not None]
    queries = list({id(q): q for q, _ in keyed}.values())
    spread(each, lambda q: q.prepared, queries)
    spread(each, lambda qf: qf[0].directions(qf[1]), [(q, f) for q in queries for f in (False, True)])
    voting = [(q, r) for q, r in keyed if len(r.entries) > CANDIDATES]
    nearest = spread(
        each,
        lambda qrf: qrf[1].keypoint_index().nearest(qrf[0].directions(qrf[2])),
        [(q, r, f) for q, r in voting for f in (False, True)],
    )
    votes = {
        (id(q), id(r)): r.keypoint_index().vote(nearest[2 * n], nearest[2 * n + 1], limit=CANDIDATES // 2)
        for n, (q, r) in enumerate(voting)
    }
    plans = [_plan(q, r, rule, votes.get((id(q), id(r)), [])) for q, r, rule in jobs]
    checks = [
        (plan, i, flip)
        for plan in plans
        for i, directions in plan.checks.items()
        if len(plan.refset.keypoints(i)) >= plan.rule.min_inliers
        for flip in sorted(directions)
    ]
    counts = spread(each, lambda pif: inliers(pif[0].query.directions(pif[2]), pif[0].refset.keypoints(pif[1])), checks)
    verified: dict[tuple[int, int], list[tuple[bool, int]]] = {}
    for (plan, i, flip), count in zip(checks, counts, strict=True):
        verified.setdefault((id(plan), i), []).append((flip, count))
    for plan in plans:
        for i in plan.checks:
            for flip, count in verified.get((id(plan), i), []):
                if count >= plan.rule.min_inliers:
                    plan.matches.append(
                        plan.found(i, "keypoints-mirror" if flip else "keypoints", count, plan.rule.min_inliers)
                    )
                    break
    return [plan.matches for plan in plans]


def _plan(query: Query, refset: ReferenceSet, rule: Any, voted: list[tuple[int, bool]]) -> _Plan:
    """The hash and embedding tiers' matches, and the candidates for the keypoint tier: in a larger
    set, those with the most keypoints near the image's (`voted`), then the closest by embedding and
    by hash."""
    plan = _Plan(query, refset, rule, [], {})
    if not refset.entries:
        return plan
    distance, mirror = distances(query.hashes, refset.hashes)
    limit = -1 if rule.max_distance is None else rule.max_distance
    hits = np.flatnonzero(distance <= limit)
    plan.matches += [
        plan.found(int(i), "phash-mirror" if mirror[i] else "phash", int(distance[i]), limit)
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
                plan.matches.append(plan.found(i, "clip", round(float(s), 4), rule.min_similarity))
                matched.add(i)
        order += [(i, None) for i in indices.tolist()[:per_ranking]]
    if rule.min_inliers is None:
        return plan
    order = [*voted, *order]
    closest = np.argsort(distance, kind="stable")[: per_ranking + len(matched)].tolist()
    order += [(i, bool(mirror[i]) if large else None) for i in closest]
    for i, flip in order:
        if i in matched or (i not in plan.checks and len(plan.checks) == CANDIDATES):
            continue
        plan.checks.setdefault(i, set()).update((False, True) if flip is None else (flip,))
    return plan


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
    `each` maps the work (an executor's map runs it concurrently: hashing, faiss and OpenCV release
    the GIL)."""
    embeddings: list[np.ndarray | None] = [None] * len(images)
    with_vectors = [refsets[name] for name in sets if refsets[name].embeddings is not None]
    if embedder is not None and with_vectors:
        check_embeddings({refset.name: refset for refset in with_vectors}, embedder)
        embeddings = list(embedder.embed_images(images))
    known = hashes or [None] * len(images)
    queries = [Query(image, vector, h) for image, vector, h in zip(images, embeddings, known, strict=True)]

    def jobs(query: Query) -> list[tuple[Query, ReferenceSet, Any]]:
        return [(query, refsets[name], rule) for name, rule in sets.items()]

    def one(query: Query) -> list[Match]:
        return [m for found in _match_all(jobs(query)) for m in found]

    if len(queries) >= cores():  # an image per worker: no waiting between rounds
        return list(each(one, queries))
    spread(each, lambda q: q.hashes, queries)
    found = iter(_match_all([job for q in queries for job in jobs(q)], each))
    return [[m for _ in sets for m in next(found)] for _ in queries]


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
    """The decision after screening: a `block` match denies (rule id `screening.<set>`), a `flag` match
    flags, a `review` match sends the call to review; either way every match is named in the fired rules."""
    return decision.with_fired(fired_rules(matches, stage))


def fired_rules(matches: list[list[Match]], stage: str) -> list[FiredRule]:
    """One fired rule `screening.<set>` per match, naming the image (in `stage`) and the reference."""
    fired = []
    for index, found in enumerate(matches):
        for m in found:
            effect = {"block": "deny", "review": "review"}.get(m.action, "flag")
            detail = f"{stage} image {index} resembles {m.label!r} ({m.describe()})"
            message = (
                f"{'blocked' if effect == 'deny' else m.action}: resembles protected {m.set} reference {m.label!r}"
            )
            fired.append(FiredRule(f"screening.{m.set}", effect, message, detail))
    return fired


def summary(matches: list[list[Match]]) -> list[list[dict[str, Any]]]:
    return [[m.as_dict() for m in found] for found in matches]
