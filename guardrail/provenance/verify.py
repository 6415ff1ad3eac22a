"""Verifying a signed image: C2PA validation state and codes, the governance assertion, and — with
the audit database — the audit record it points to and whether the file is the one that was logged."""

from __future__ import annotations

import hashlib
import io
import re
from dataclasses import dataclass, field, replace
from typing import Any

from guardrail.provenance.manifest import (
    DISCLOSURE_LABEL,
    SOFT_BINDING_LABEL,
    assertion_of,
    assertions_of,
    governance_of,
    source_types_of,
)

NO_MANIFEST = "NoManifest"
UNTRUSTED = "signingCredential.untrusted"
AUDIT_ID = re.compile(r"[0-9a-f]{32}")
"""A call id as guardrail writes them; anything else in a manifest is not looked up."""


@dataclass(frozen=True)
class Verification:
    """What `guardrail verify` reports for one image."""

    source: str
    state: str
    """Trusted, Valid, Invalid, or NoManifest."""
    failures: list[str] = field(default_factory=list)
    generator: list[dict[str, Any]] = field(default_factory=list)
    manifest_label: str | None = None
    governance: dict[str, Any] | None = None
    sha256: str = ""
    audit: dict[str, Any] | None = None
    """With a database: the logged call's status and decision, and `hash_matches`."""
    disclosure: dict[str, Any] | None = None
    """The disclosure assertion (provider, system, created, id, ai_generated), untrusted like all."""
    source_types: list[str] = field(default_factory=list)
    """The actions' digitalSourceType values (IPTC)."""
    soft_bindings: list[dict[str, Any]] = field(default_factory=list)
    """The c2pa.soft-binding assertions (each: an algorithm and its value: the watermark, the fingerprint)."""
    timestamp: str | None = None
    """When a time-stamping authority countersigned the signature (RFC 3161), if one did."""

    @property
    def audit_id(self) -> str | None:
        """The call this image says it came from (its governance assertion), if any."""
        value = self.governance.get("audit_id") if self.governance else None
        return value if isinstance(value, str) and AUDIT_ID.fullmatch(value) else None

    def with_audit(self, record: dict[str, Any]) -> Verification:
        """This result with the audit log's record of the call (see guardrail.audit.query.audit_record)."""
        return replace(self, audit=record)

    def ok(self, *, require_trusted: bool = True) -> bool:
        """Valid and signed by a trusted signer (a chain to a configured trust anchor), and, when
        checked against the audit log, the file it logged. `require_trusted=False` accepts any valid
        signature: anyone can make one with a certificate of their own."""
        if self.state not in ("Trusted", "Valid"):
            return False
        if [code for code in self.failures if code != UNTRUSTED]:
            return False
        if require_trusted and self.state != "Trusted":
            return False
        return self.audit is None or bool(self.audit.get("hash_matches"))

    def why_not(self, *, require_trusted: bool = True) -> str:
        """Why ok() is false, in a sentence ('' when it is true)."""
        if self.ok(require_trusted=require_trusted):
            return ""
        if self.state == NO_MANIFEST:
            return "no C2PA manifest"
        if self.state not in ("Trusted", "Valid"):
            return f"the manifest does not validate ({', '.join(self.failures) or self.state})"
        other = [code for code in self.failures if code != UNTRUSTED]
        if other:
            return f"validation failures: {', '.join(other)}"
        if require_trusted and self.state != "Trusted":
            return (
                "the signer is not trusted: its certificate chain leads to no configured trust anchor "
                "(give --trust-anchors or provenance.trust_anchors in guardrail.yaml; --allow-untrusted "
                "accepts any valid signature)"
            )
        return "the file is not the one the audit log recorded for this call"

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "state": self.state,
            "failures": self.failures,
            "generator": self.generator,
            "manifest_label": self.manifest_label,
            "governance": self.governance,
            "sha256": self.sha256,
            "audit": self.audit,
            "disclosure": self.disclosure,
            "source_types": self.source_types,
            "soft_bindings": self.soft_bindings,
            "timestamp": self.timestamp,
        }


def verify_bytes(data: bytes, *, source: str = "<bytes>", trust_anchors: str | None = None) -> Verification:
    """Validate a signed image offline (no remote manifests, no OCSP). Reads only. To check it against
    the audit log too: `result.with_audit(guardrail.audit.query.audit_record(engine, result))`."""
    import c2pa

    settings: dict[str, Any] = {"verify": {"remote_manifest_fetch": False, "ocsp_fetch": False}}
    if trust_anchors:
        settings["trust"] = {"user_anchors": trust_anchors}
    digest = hashlib.sha256(data).hexdigest()
    context = c2pa.Context.from_dict(settings)
    try:
        reader = c2pa.Reader.try_create(io.BytesIO(data), context=context)
    except c2pa.C2paError as exc:
        return Verification(source, "Invalid", [f"unreadable: {exc}"], sha256=digest)
    if reader is None:
        return Verification(source, NO_MANIFEST, sha256=digest)
    with reader:
        state = reader.get_validation_state() or "Invalid"
        results = reader.get_validation_results() or {}
        manifest = reader.get_active_manifest() or {}
    failures = [str(item.get("code")) for item in _list((results.get("activeManifest") or {}).get("failure"))]
    return Verification(
        source=source,
        state=state,
        failures=failures,
        generator=list(manifest.get("claim_generator_info") or []),
        manifest_label=manifest.get("label"),
        governance=governance_of(manifest),
        sha256=digest,
        disclosure=assertion_of(manifest, DISCLOSURE_LABEL),
        source_types=source_types_of(manifest),
        soft_bindings=assertions_of(manifest, SOFT_BINDING_LABEL),
        timestamp=_timestamp(manifest),
    )


def _timestamp(manifest: dict[str, Any]) -> str | None:
    info = manifest.get("signature_info")
    value = info.get("time") if isinstance(info, dict) else None
    return value if isinstance(value, str) else None


def _list(value: Any) -> list[Any]:
    """The dicts of a list read from a manifest (anything else in it, or a non-list, is ignored)."""
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []
