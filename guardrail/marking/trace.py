"""Tracing an image back to the call that made it, strongest evidence first: its C2PA manifest (the
audit id it names, and whether the file is the one logged), then the watermark (a token read from the
pixels, logged with exactly one output; it survives the re-encodes, resizes, crops and colour changes
that strip the manifest), then the fingerprint registry (the closest logged outputs by perceptual
fingerprint: weaker evidence, for images that were never marked or whose mark was destroyed)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

MAX_DISTANCE = 10
"""Fingerprint matches at most this many bits apart (of 64): screening's default threshold, which the
screening evaluation measured at 0 false positives among its negatives."""


@dataclass(frozen=True)
class Evidence:
    """One way an image led to a call."""

    method: str
    """c2pa, watermark or fingerprint."""
    audit_id: str
    image_index: int | None
    strength: str
    """strong (a valid, trusted manifest naming the call and the very file logged, or a watermark token
    logged with one output only), medium (a manifest naming the call that is untrusted or not the
    logged file; a token logged with several outputs), weak (a fingerprint match only)."""
    detail: str
    distance: int | None = None
    """Fingerprint: bits apart, of 64."""
    confidence: float | None = None
    """Watermark: the weakest symbol's correlation, in standard deviations (see guardrail.marking.watermark)."""

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Trace:
    """What tracing one image found: the evidence, best first, and the calls' audit records."""

    source: str
    evidence: list[Evidence] = field(default_factory=list)
    records: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def found(self) -> bool:
        return bool(self.evidence)

    @property
    def fingerprint_only(self) -> bool:
        return self.found and all(e.method == "fingerprint" for e in self.evidence)

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "found": self.found,
            "fingerprint_only": self.fingerprint_only,
            "evidence": [e.as_dict() for e in self.evidence],
            "records": self.records,
        }


class FingerprintRegistry:
    """The audit log's fingerprint registry held in memory for repeated lookups: the first search reads
    every row (about 0.1 s per 100k rows from SQLite), later ones only rows added since, and the whole
    registry again when rows were deleted (retention). Thread-safe; reads only."""

    def __init__(self, engine: Engine) -> None:
        import threading

        import numpy as np

        self.engine = engine
        self._ids = np.zeros(0, np.int64)
        self._hashes = np.zeros((0, 4), np.uint64)
        self._lock = threading.Lock()

    def _refresh(self) -> None:
        import numpy as np

        from guardrail.audit.query import fingerprint_count, fingerprint_hashes

        last = int(self._ids[-1]) if len(self._ids) else 0
        ids, hashes = fingerprint_hashes(self.engine, after_id=last)
        ids, hashes = np.concatenate([self._ids, ids]), np.vstack([self._hashes, hashes])
        if fingerprint_count(self.engine) != len(ids):  # rows were deleted: read them all again
            ids, hashes = fingerprint_hashes(self.engine)
        self._ids, self._hashes = ids, np.asfortranarray(hashes)

    def search(self, hashes: tuple[int, ...], max_distance: int, limit: int = 5) -> list[tuple[int, int, bool]]:
        """(row id, distance, mirrored) of the closest logged outputs within `max_distance`, closest first."""
        import numpy as np

        from guardrail.screening.hashes import distances

        with self._lock:
            self._refresh()
            ids, table = self._ids, self._hashes
        if not len(ids):
            return []
        closest, mirrored = distances(hashes, table)
        near = np.flatnonzero(closest <= max_distance)
        near = near[np.argsort(closest[near], kind="stable")][:limit]
        return [(int(ids[row]), int(closest[row]), bool(mirrored[row])) for row in near]


def trace_bytes(
    data: bytes,
    engine: Engine,
    *,
    source: str = "<bytes>",
    trust_anchors: str | None = None,
    max_distance: int = MAX_DISTANCE,
    registry: FingerprintRegistry | None = None,
) -> Trace:
    """Trace an image file's bytes to the calls in an audit log (pass a FingerprintRegistry kept across
    calls to look up in milliseconds). Raises InvalidImage / ImageTooLarge for a file that is no
    readable image. Reads only."""
    from guardrail.audit.query import audit_record, call_summary, fingerprint_owners, watermark_owners
    from guardrail.images import open_image
    from guardrail.marking.watermark import detect_image
    from guardrail.provenance.verify import verify_bytes
    from guardrail.screening.hashes import fingerprint

    image = open_image(data, name=source)
    evidence: list[Evidence] = []
    verification = verify_bytes(data, source=source, trust_anchors=trust_anchors)
    if verification.audit_id is not None:
        record = audit_record(engine, verification)
        if record.get("found"):
            exact = bool(record.get("hash_matches"))
            trusted = verification.ok(require_trusted=trust_anchors is not None)
            strength = "strong" if exact and trusted else "medium"
            detail = f"C2PA manifest ({verification.state}) names the call" + (
                "; the file is the one logged" if exact else "; the file is not the one logged"
            )
            evidence.append(Evidence("c2pa", verification.audit_id, None, strength, detail))
    mark = detect_image(image)
    if mark is not None:
        marked = watermark_owners(engine, mark.token)
        for call_id, index, _ in marked:
            detail = f"watermark {mark.algorithm} carries token {mark.token:08x}, confidence {mark.confidence}" + (
                f" (the copy is at {mark.scale:.0%} of the logged size)" if mark.scale != 1.0 else ""
            )
            strength = "strong" if len(marked) == 1 else "medium"
            evidence.append(Evidence("watermark", call_id, index, strength, detail, confidence=mark.confidence))
    near = (registry or FingerprintRegistry(engine)).search(fingerprint(image), max_distance)
    owners = fingerprint_owners(engine, [row for row, _, _ in near])
    for row, distance, mirrored in near:
        if row not in owners:  # deleted since the registry was read
            continue
        call_id, index = owners[row]
        detail = f"perceptual fingerprint {distance} of 64 bits apart" + (" (mirrored)" if mirrored else "")
        evidence.append(Evidence("fingerprint", call_id, index, "weak", detail, distance))
    records = {e.audit_id: call_summary(engine, e.audit_id) for e in evidence}
    return Trace(source, evidence, records)
