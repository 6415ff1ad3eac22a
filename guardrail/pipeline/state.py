"""One call's state as it passes through the stages, and the one shape every stage has."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from guardrail.adapters import CallAdapter
    from guardrail.pipeline.evidence import Evidence
    from guardrail.policy.decision import Decision
    from guardrail.policy.engine import PolicyEngine
    from guardrail.request import CallContext, GenerationRequest, SignedImage
    from guardrail.screening.screen import Match


@dataclass(frozen=True)
class Caller:
    """Who makes the call, as the wrapper was told (`user=`, `roles=`, `tenant=`)."""

    user: str | None = None
    roles: tuple[str, ...] = ()
    tenant: str | None = None


@dataclass(frozen=True)
class CallState:
    """Everything one guarded call has gathered so far. Stages never change it: each returns a new one
    (dataclasses.replace), adding what it found."""

    adapter: CallAdapter
    """Reads the call, applies a decision to it, runs the target, attaches the result."""
    args: tuple[Any, ...]
    kwargs: Mapping[str, Any]
    caller: Caller
    engine: PolicyEngine
    """The policy in force for the whole call, even if a reload lands meanwhile."""
    call: CallContext | None = None
    on_record: bool = False
    """The request event is written: from here on an error or a deny is audited as the call's outcome."""
    decision: Decision | None = None
    shadow: Decision | None = None
    """The shadow policy's decision over the same checks, when one is configured."""
    evidence: Evidence | None = None
    call_args: tuple[tuple[Any, ...], dict[str, Any]] | None = None
    """The arguments the target is called with, after the decision's changes."""
    output: Any = None
    images: tuple[Any, ...] = ()
    digests: tuple[str, ...] = ()
    fingerprints: tuple[tuple[int, int, int, int], ...] = ()
    """Each image's perceptual fingerprint (guardrail.screening.hashes.COLUMNS)."""
    matches: tuple[tuple[Match, ...], ...] = ()
    watermarks: tuple[int | None, ...] = ()
    """Each image's watermark token (None where it was not marked)."""
    signed: tuple[SignedImage, ...] = ()
    held: tuple[dict[str, Any], ...] = ()
    """Each image held for review (its stored file's sha256 and mime), when the policy sent the call there."""
    notes: Mapping[str, Any] = field(default_factory=dict)
    """What the audit outcome records beside the decision (screening summaries, shadow, signing errors)."""
    timings: Mapping[str, float] = field(default_factory=dict)
    """Milliseconds per stage, in the order they ran."""
    error: BaseException | None = None
    result: Any = None
    """What the wrapper returns to its caller."""

    def evolve(self, **changes: Any) -> CallState:
        """A copy with these fields changed. dataclasses.replace re-runs the frozen __init__ field by
        field (about 20 us here, a dozen times a call); nothing here validates in __init__, so a copy
        of the instance dict is the same result at a tenth of the cost."""
        unknown = changes.keys() - _FIELDS
        if unknown:
            raise TypeError(f"CallState has no field {sorted(unknown)[0]!r}")
        new = object.__new__(CallState)
        new.__dict__.update(self.__dict__)
        new.__dict__.update(changes)
        return new

    @property
    def request(self) -> GenerationRequest:
        assert self.call is not None, "the read stage has not run"
        return self.call.request

    @property
    def denied(self) -> bool:
        return self.decision is not None and not self.decision.allowed

    def noted(self, **notes: Any) -> dict[str, Any]:
        """The notes with these added (a `screening` or `classifiers` note is merged with the one already
        there: inputs, then outputs)."""
        merged = dict(self.notes)
        for key, value in notes.items():
            merged[key] = {**merged.get(key, {}), **value} if key in ("screening", "classifiers") else value
        return merged


_FIELDS = frozenset(f.name for f in fields(CallState))


class Stage(Protocol):
    """One step of a guarded call: configured once (by the Guard), then called per call."""

    name: str

    def __call__(self, state: CallState) -> CallState: ...
