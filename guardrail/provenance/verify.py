"""Verifying a signed image: C2PA validation state and codes, the governance assertion, and — with
the audit database — the audit record it points to and whether the file is the one that was logged."""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from guardrail.provenance.manifest import governance_of

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

NO_MANIFEST = "NoManifest"


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

    def ok(self, *, require_trusted: bool) -> bool:
        if self.state not in ("Trusted", "Valid") or self.failures:
            return False
        if require_trusted and self.state != "Trusted":
            return False
        return self.audit is None or bool(self.audit.get("hash_matches"))

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
        }


def verify_bytes(
    data: bytes, *, source: str = "<bytes>", trust_anchors: str | None = None, engine: Engine | None = None
) -> Verification:
    """Validate a signed image offline (no remote manifests, no OCSP). Reads only."""
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
    failures = [item["code"] for item in (results.get("activeManifest") or {}).get("failure", [])]
    if trust_anchors is None:  # without anchors nothing can be trusted; that alone is no failure
        failures = [code for code in failures if code != "signingCredential.untrusted"]
    governance = governance_of(manifest)
    audit = _audit_record(engine, governance, digest) if engine is not None and governance else None
    return Verification(
        source=source,
        state=state,
        failures=failures,
        generator=list(manifest.get("claim_generator_info") or []),
        manifest_label=manifest.get("label"),
        governance=governance,
        sha256=digest,
        audit=audit,
    )


def _audit_record(engine: Engine, governance: dict[str, Any], digest: str) -> dict[str, Any]:
    from guardrail.audit.query import call_events

    audit_id = str(governance.get("audit_id") or "")
    events = call_events(engine, audit_id) if audit_id else []
    outcome = next((e for e in events if e["kind"] == "outcome"), None)
    if outcome is None:
        return {"audit_id": audit_id, "found": False, "hash_matches": False}
    detail = outcome["detail"] if isinstance(outcome["detail"], dict) else json.loads(outcome["detail"])
    logged = [o.get("signed_sha256") for o in detail.get("outputs", [])]
    return {
        "audit_id": audit_id,
        "found": True,
        "status": outcome["status"],
        "decision": outcome["decision"],
        "user": outcome["user_id"],
        "logged_at": str(outcome["created_at"]),
        "hash_matches": digest in logged,
    }
