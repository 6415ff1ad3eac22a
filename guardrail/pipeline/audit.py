"""Stages that write the call's audit events: the request before anything is decided (evidence that
the call was made, even if the process dies), the outcome after everything else."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from guardrail.audit.events import outcome_event, request_event
from guardrail.audit.query import as_signed
from guardrail.audit.store import AuditStore
from guardrail.pipeline.decide import shadow_notes
from guardrail.pipeline.state import CallState
from guardrail.policy.engine import PolicyEngine


class AuditRequest:
    name = "audit_request"

    def __init__(self, store: AuditStore) -> None:
        self.store = store

    def __call__(self, state: CallState) -> CallState:
        assert state.call is not None
        self.store.write(request_event(state.call))
        return state.evolve(on_record=True)


class AuditOutcome:
    """Finish stage: the decision, outputs, timings, any error and the notes, as one event. Raises
    AuditWriteError when it cannot be written: then no image is returned."""

    name = "audit_outcome"

    def __init__(self, store: AuditStore, shadow: PolicyEngine | None = None) -> None:
        self.store = store
        self.shadow = shadow

    def __call__(self, state: CallState) -> CallState:
        if not state.on_record:
            return state
        assert state.call is not None
        notes = dict(state.notes)
        if self.shadow is not None and state.shadow is not None and state.decision is not None:
            notes.update(shadow_notes(self.shadow, state.shadow, state.decision))
        outputs = [{"sha256": digest} for digest in state.digests]
        for record, item in zip(outputs, state.signed, strict=False):
            record.update(signed_sha256=item.sha256, manifest=item.manifest_label, mime=item.mime)
        for record, token in zip(outputs, state.watermarks, strict=False):
            if token is not None:
                record["watermark"] = f"{token:08x}"
        for record, held in zip(outputs, state.held, strict=False):
            record.update(held)
        event = outcome_event(
            state.call,
            decision=state.decision,
            outputs=outputs,
            durations_ms=dict(state.timings),
            error=state.error,
            notes=notes,
            held=bool(state.held) and state.error is None,
        )
        self.store.write(event, _registry_rows(state, event.created_at))
        return state


def _registry_rows(state: CallState, created_at: datetime) -> list[dict[str, Any]]:
    """The fingerprint registry's rows for the images a call returns (none for a denied or failed call)."""
    if not state.fingerprints or state.error is not None or state.denied or state.call is None:
        return []
    from guardrail.marking.watermark import NAME
    from guardrail.screening.hashes import FINGERPRINT

    signed: list[str | None] = [item.sha256 for item in state.signed] or [None] * len(state.fingerprints)
    marks: list[int | None] = list(state.watermarks) or [None] * len(state.fingerprints)
    return [
        {
            "call_id": state.call.call_id,
            "image_index": index,
            "created_at": created_at,
            "algorithm": FINGERPRINT,
            **{f"hash{i}": as_signed(value) for i, value in enumerate(hashes)},
            "sha256": digest,
            "signed_sha256": signed_sha256,
            "watermark": token,
            "watermark_algorithm": NAME if token is not None else None,
        }
        for index, (hashes, digest, signed_sha256, token) in enumerate(
            zip(state.fingerprints, state.digests, signed, marks, strict=False)
        )
    ]
