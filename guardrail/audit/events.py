"""Audit events: the rows one call writes, built from the typed objects of that call."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timezone
from typing import Any

from guardrail.policy.decision import Decision
from guardrail.request import CallContext

SCHEMA_VERSION = 1
"""Version of the event payload layout, stored on every row."""


def new_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True)
class AuditEvent:
    """One row of the audit log."""

    event_id: str
    call_id: str
    kind: str
    created_at: datetime
    user_id: str | None
    roles: list[str]
    status: str
    policy_name: str
    policy_version: str
    privacy_mode: str
    hmac_key_id: str | None
    prompts: list[Any]
    negative_prompts: list[Any]
    params: dict[str, Any]
    model: dict[str, Any]
    inputs: list[dict[str, Any]]
    pipeline_class: str | None = None
    model_name: str | None = None
    decision: str | None = None
    flagged: bool = False
    rules: list[str] = field(default_factory=list)
    detail: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    schema_version: int = SCHEMA_VERSION

    def row(self) -> dict[str, Any]:
        """The column values (shallow: dataclasses.asdict would deep-copy every JSON payload)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _call_event(ctx: CallContext, kind: str, status: str, **fields: Any) -> AuditEvent:
    """An event of one call, with what every event of the call shares; `fields` override."""
    req = ctx.request
    shared: dict[str, Any] = {
        "user_id": req.user,
        "roles": list(req.roles),
        "policy_name": ctx.policy_name,
        "policy_version": ctx.policy_version,
        "privacy_mode": ctx.privacy.mode,
        "hmac_key_id": ctx.privacy.key_id,
        "prompts": ctx.privacy.protect(req.prompts),
        "negative_prompts": ctx.privacy.protect(req.negative_prompts),
        "params": _jsonable(req.parameters()),
        "model": req.model.as_dict(),
        "inputs": [i.as_dict() for i in req.input_images],
        "pipeline_class": req.model.pipeline_class,
        "model_name": req.model.name_or_path,
    }
    return AuditEvent(
        event_id=new_id(),
        call_id=ctx.call_id,
        kind=kind,
        created_at=datetime.now(timezone.utc),
        status=status,
        **{**shared, **fields},
    )


def request_event(ctx: CallContext) -> AuditEvent:
    """The event written before anything is decided: evidence that the call was made."""
    req = ctx.request
    return _call_event(
        ctx, "request", "pending", detail={"has_prompt_embeds": req.has_prompt_embeds, "tenant": req.tenant}
    )


def outcome_event(
    ctx: CallContext,
    *,
    decision: Decision | None,
    outputs: list[dict[str, Any]],
    durations_ms: dict[str, float],
    error: BaseException | None = None,
    notes: dict[str, Any] | None = None,
    held: bool = False,
) -> AuditEvent:
    """The event written after the call: decision, outputs (each a dict with at least `sha256`),
    timings, any error, and `notes` for what the call should record beside them. `held`: the images
    were kept for review (status pending_review)."""
    req = ctx.request
    modified = decision.modified() if decision else {}
    if error is not None:
        status = "error"
    elif decision is None or decision.effect == "deny":
        status = "denied"
    elif held:
        status = "pending_review"
    else:
        status = "modified" if decision.effect == "modify" else "allowed"
    negatives = modified.get("negative_prompts", req.negative_prompts)
    detail: dict[str, Any] = {
        "decision": decision.as_dict() if decision else None,
        "outputs": outputs,
        "durations_ms": durations_ms,
        **(notes or {}),
    }
    if "negative_prompts" in modified:
        detail["decision"]["modified"]["negative_prompts"] = ctx.privacy.protect(negatives)
        for mod in detail["decision"]["modifications"]:
            if mod["field"] == "negative_prompts":
                mod["before"] = ctx.privacy.protect(mod["before"])
                mod["after"] = ctx.privacy.protect(mod["after"])
    return _call_event(
        ctx,
        "outcome",
        status,
        negative_prompts=ctx.privacy.protect(list(negatives)),
        params=_jsonable({**req.parameters(), **{k: v for k, v in modified.items() if k != "negative_prompts"}}),
        decision=decision.effect if decision else None,
        flagged=bool(decision and decision.flagged),
        rules=list(decision.rule_ids) if decision else [],
        detail=detail,
        error=f"{type(error).__name__}: {error}" if error is not None else None,
    )


def system_event(
    kind: str, status: str, detail: dict[str, Any], *, policy: tuple[str, str] = ("-", "-"), error: str | None = None
) -> AuditEvent:
    """An event that is no call's (a policy reload, an erasure): no user, no prompts."""
    return AuditEvent(
        event_id=new_id(),
        call_id=new_id(),
        kind=kind,
        created_at=datetime.now(timezone.utc),
        user_id=None,
        roles=[],
        status=status,
        policy_name=policy[0],
        policy_version=policy[1],
        privacy_mode="none",
        hmac_key_id=None,
        prompts=[],
        negative_prompts=[],
        params={},
        model={},
        inputs=[],
        detail=detail,
        error=error,
    )


def review_event(
    call_id: str, reviewer: str, status: str, detail: dict[str, Any], *, policy: tuple[str, str]
) -> AuditEvent:
    """A review action on a call held for review: the reviewer (as user_id), the item's status after it
    (pending_review, approved, rejected) and what was done (detail: action, note, approvals, release).
    No prompts: those stay with the call's own events, under its privacy mode."""
    return replace(system_event("review", status, detail, policy=policy), call_id=call_id, user_id=reviewer)


def policy_event(policy_name: str, policy_version: str, *, applied: bool, error: BaseException | None) -> AuditEvent:
    """A policy reload: applied (the version now in force) or refused (and why; the version kept)."""
    problems = [str(p) for p in getattr(error, "problems", [])] or ([str(error)] if error else [])
    return system_event(
        "policy",
        "applied" if applied else "refused",
        {"problems": problems},
        policy=(policy_name, policy_version),
        error=f"{type(error).__name__}: {error}" if error else None,
    )


def _jsonable(value: Any) -> Any:
    """Params as JSON-safe data (anything else becomes its type name, never its contents)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return f"<{type(value).__name__}>"
