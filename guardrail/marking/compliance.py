"""Which marks a regime asks of an AI-generated image, and whether one image carries them: a signed
manifest, its timestamp, the watermark, the disclosure fields, the visible label. Each requirement is
data (id, the rule it comes from, what it asks); a check answers each with evidence. Reads only.

What is read from the file is all a checker has: a visible label is known only from the manifest that
recorded drawing it, and a copy stripped of its manifest keeps only its watermark."""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from guardrail.marking.watermark import Detection
from guardrail.provenance.manifest import COMPOSITE, TRAINED
from guardrail.provenance.verify import NO_MANIFEST, Verification

AI_SOURCE_TYPES = tuple(uri.rsplit("/", 1)[-1] for uri in (TRAINED, COMPOSITE))
"""The IPTC digital source types of AI-generated images, by their last part (full URIs and bare names match)."""


@dataclass(frozen=True)
class Marks:
    """What one image carries, as read from its bytes."""

    verification: Verification
    watermark: Detection | None

    @property
    def disclosure(self) -> dict[str, Any]:
        return self.verification.disclosure or {}

    @property
    def label(self) -> list[Any]:
        marking = (self.verification.governance or {}).get("marking")
        label = marking.get("label") if isinstance(marking, dict) else None
        return label if isinstance(label, list) else []


Check = Callable[[Marks], tuple[bool, str]]


@dataclass(frozen=True)
class Requirement:
    id: str
    rule: str
    """The provision it comes from."""
    asks: str
    check: Check


@dataclass(frozen=True)
class Finding:
    requirement: str
    rule: str
    asks: str
    ok: bool
    evidence: str


@dataclass(frozen=True)
class ComplianceResult:
    source: str
    regime: str
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(f.ok for f in self.findings)

    @property
    def missing(self) -> list[str]:
        return [f.requirement for f in self.findings if not f.ok]

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "regime": self.regime,
            "ok": self.ok,
            "missing": self.missing,
            "findings": [dict(f.__dict__) for f in self.findings],
        }


def _signed(marks: Marks) -> tuple[bool, str]:
    v = marks.verification
    if v.ok():
        return True, f"C2PA manifest {v.manifest_label} validates and its signer is trusted"
    return False, v.why_not()


def _timestamp(marks: Marks) -> tuple[bool, str]:
    if marks.verification.timestamp:
        return True, f"countersigned by a time-stamping authority at {marks.verification.timestamp}"
    if marks.verification.state == NO_MANIFEST:
        return False, "no C2PA manifest"
    return False, "the manifest's signature carries no RFC 3161 timestamp (configure provenance.timestamp_url)"


def _watermark(marks: Marks) -> tuple[bool, str]:
    found = marks.watermark
    if found is None:
        return False, "no watermark read from the pixels"
    evidence = f"{found.algorithm} carries token {found.token:08x} (confidence {found.confidence})"
    from guardrail.marking.watermark import ALGORITHM

    bindings = [b for b in marks.verification.soft_bindings if str(b.get("alg", "")).startswith(ALGORITHM)]
    if bindings:
        binding = bindings[0]
        blocks = binding.get("blocks")
        value = blocks[0].get("value") if isinstance(blocks, list) and blocks and isinstance(blocks[0], dict) else None
        try:
            bound = base64.b64decode(value, validate=True) if isinstance(value, str) else b""
        except ValueError:
            bound = b""
        if bound != found.token.to_bytes(4, "big"):
            return False, evidence + ", but the manifest's soft binding names another value"
        evidence += "; the manifest's soft binding names the same token"
    return True, evidence


def _ai_disclosed(marks: Marks) -> tuple[bool, str]:
    types = [t.rsplit("/", 1)[-1] for t in marks.verification.source_types]
    ai = [t for t in types if t in AI_SOURCE_TYPES]
    if ai:
        return True, f"the manifest's actions declare digitalSourceType {ai[0]}"
    if marks.disclosure.get("ai_generated") is True:
        return True, "the disclosure assertion says ai_generated"
    return False, "no machine-readable statement that the image is AI-generated"


_CONFIGURE = " (set provenance.provider / provenance.system in guardrail.yaml)"


def _field(name: str, read: Callable[[dict[str, Any]], Any], hint: str = "") -> Check:
    def check(marks: Marks) -> tuple[bool, str]:
        value = read(marks.disclosure)
        if isinstance(value, str) and value.strip():
            return True, f"{name}: {value}"
        where = "no disclosure assertion" if not marks.disclosure else f"the disclosure assertion has no {name}"
        return False, where + hint

    return check


def _system(key: str) -> Callable[[dict[str, Any]], Any]:
    def read(disclosure: dict[str, Any]) -> Any:
        system = disclosure.get("system")
        return system.get(key) if isinstance(system, dict) else None

    return read


def _visible_label(marks: Marks) -> tuple[bool, str]:
    texts = [item.get("text") for item in marks.label if isinstance(item, dict) and isinstance(item.get("text"), str)]
    if texts:
        return True, f"the signed manifest records the visible label {texts[0]!r} drawn on the image"
    if marks.verification.state == NO_MANIFEST:
        return False, "no C2PA manifest records a visible label (a person can still look at the image)"
    return False, "the manifest records no visible label (configure marking.label in the policy)"


_provider = _field("provider", lambda d: d.get("provider"), _CONFIGURE)
_unique_id = _field("id", lambda d: d.get("id"))

_EU = "EU AI Act Art. 50(2); Code of Practice on marking and labelling"
_CA = "California SB 942 (Bus. & Prof. Code 22757.3(b)), latent disclosure"
_CN = "Measures for Labelling AI-Generated Synthetic Content with GB 45438-2025"

REGIMES: dict[str, list[Requirement]] = {
    "eu-art50": [
        Requirement("signed_manifest", f"{_EU} 1.1.1", "signed metadata (a C2PA manifest)", _signed),
        Requirement("timestamp", f"{_EU} 1.1.1", "the metadata time-stamped by a trusted authority", _timestamp),
        Requirement("watermark", f"{_EU} 1.1.2", "an imperceptible watermark in the content", _watermark),
        Requirement("ai_disclosed", "EU AI Act Art. 50(2)", "marked machine-readably as AI-generated", _ai_disclosed),
    ],
    "ca-sb942": [
        Requirement("provider", _CA, "the name of the provider", _provider),
        Requirement(
            "system_name", _CA, "the name of the GenAI system", _field("system name", _system("name"), _CONFIGURE)
        ),
        Requirement("system_version", _CA, "its version", _field("system version", _system("version"), _CONFIGURE)),
        Requirement("created", _CA, "the time and date of creation", _field("created", lambda d: d.get("created"))),
        Requirement("unique_id", _CA, "a unique identifier", _unique_id),
        Requirement(
            "watermark", f"{_CA}: permanent or extraordinarily difficult to remove", "a mark in the pixels", _watermark
        ),
        Requirement("signed_manifest", _CA, "detectable by a provenance detection tool", _signed),
    ],
    "cn-gb45438": [
        Requirement("visible_label", f"{_CN}, Art. 4 (explicit label)", "a visible label on the image", _visible_label),
        Requirement(
            "ai_disclosed", f"{_CN}, Art. 5 (implicit label)", "metadata saying it is AI-generated", _ai_disclosed
        ),
        Requirement(
            "provider",
            f"{_CN}, Art. 5 (implicit label)",
            "the provider's name in the metadata",
            _provider,
        ),
        Requirement(
            "content_id",
            f"{_CN}, Art. 5 (implicit label)",
            "a content identifier in the metadata",
            _unique_id,
        ),
        Requirement("signed_manifest", f"{_CN}, Art. 5", "the metadata intact (a valid signed manifest)", _signed),
        Requirement(
            "watermark", f"{_CN}, Art. 5 (digital watermark encouraged)", "an implicit mark in the content", _watermark
        ),
    ],
}


def check_bytes(
    data: bytes, regime: str, *, source: str = "<bytes>", trust_anchors: str | None = None
) -> ComplianceResult:
    """Check one image file's marks against a regime. Raises KeyError for an unknown regime and
    InvalidImage / ImageTooLarge for a file that is no readable image. Reads only."""
    from guardrail.images import open_image
    from guardrail.marking.watermark import detect_image
    from guardrail.provenance.verify import verify_bytes

    requirements = REGIMES[regime]
    image = open_image(data, name=source)
    marks = Marks(verify_bytes(data, source=source, trust_anchors=trust_anchors), detect_image(image))
    findings = []
    for requirement in requirements:
        ok, evidence = requirement.check(marks)
        findings.append(Finding(requirement.id, requirement.rule, requirement.asks, ok, evidence))
    return ComplianceResult(source, regime, findings)
