"""Stages that write the call's audit events: the request before anything is decided (evidence that
the call was made, even if the process dies), the outcome after everything else."""

from __future__ import annotations

from guardrail.audit.events import outcome_event, request_event
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
        event = outcome_event(
            state.call,
            decision=state.decision,
            outputs=outputs,
            durations_ms=dict(state.timings),
            error=state.error,
            notes=notes,
        )
        self.store.write(event)
        return state
