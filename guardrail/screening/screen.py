"""Matching images against the reference sets a policy names, with each set's threshold and action."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from guardrail.policy.decision import Decision, FiredRule
from guardrail.screening.hashes import fingerprint, hamming
from guardrail.screening.refsets import ReferenceSet


@dataclass(frozen=True)
class Match:
    """One image resembling one reference."""

    set: str
    reference_id: str
    label: str
    method: str
    distance: int
    threshold: int
    action: str

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def match(image: Any, refset: ReferenceSet, *, threshold: int, action: str) -> list[Match]:
    """The references of a set within `threshold` bits of the image (or of its mirror), closest first."""
    if not refset.entries:
        return []
    direct, mirrored = fingerprint(image)
    by_direct = hamming(direct, refset.hashes[:, 0])
    by_mirror = hamming(mirrored, refset.hashes[:, 0])  # a flipped copy of a reference
    best = np.minimum(by_direct, by_mirror)
    hits = np.flatnonzero(best <= threshold)
    found = []
    for index in hits[np.argsort(best[hits])]:
        method = "phash" if by_direct[index] <= by_mirror[index] else "phash-mirror"
        entry = refset.entries[index]
        found.append(Match(refset.name, entry.id, entry.label, method, int(best[index]), threshold, action))
    return found


def screen(images: list[Any], sets: dict[str, Any], refsets: dict[str, ReferenceSet]) -> list[list[Match]]:
    """Matches of each image against every set the policy screens with (`sets`: name -> ScreeningSet)."""
    return [
        [
            m
            for name, rule in sets.items()
            for m in match(image, refsets[name], threshold=rule.max_distance, action=rule.action)
        ]
        for image in images
    ]


def apply_matches(decision: Decision, matches: list[list[Match]], stage: str) -> Decision:
    """The decision after screening: a `block` match denies (rule id `screening.<set>`), `flag` and
    `review` matches flag; either way every match is named in the fired rules."""
    fired = []
    for index, found in enumerate(matches):
        for m in found:
            effect = "deny" if m.action == "block" else "flag"
            detail = f"{stage} image {index} resembles {m.label!r} ({m.method} distance {m.distance} <= {m.threshold})"
            message = (
                f"{'blocked' if effect == 'deny' else m.action}: resembles protected {m.set} reference {m.label!r}"
            )
            fired.append(FiredRule(f"screening.{m.set}", effect, message, detail))
    if not fired:
        return decision
    if any(rule.effect == "deny" for rule in fired):
        flags = tuple(rule for rule in decision.fired if rule.effect == "flag")
        return Decision("deny", (*flags, *fired), quotas=decision.quotas)
    return replace(decision, fired=(*decision.fired, *fired))


def summary(matches: list[list[Match]]) -> list[list[dict[str, Any]]]:
    return [[m.as_dict() for m in found] for found in matches]
