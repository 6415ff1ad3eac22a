"""Quotas: images per user, role or tenant per time window. This module says which counters a
request draws on and what the outcome means for the decision; the counting itself is the audit
store's (guardrail.audit.quota), so that every process and worker shares one count."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from guardrail.policy.decision import Decision, FiredRule
from guardrail.policy.schema import Quota
from guardrail.request import GenerationRequest

ANONYMOUS = "<anonymous>"


@dataclass(frozen=True)
class QuotaUse:
    """One counter a call draws on: a quota, whose budget (user, role or tenant), and which window."""

    quota: Quota
    subject: str
    window_start: int


@dataclass(frozen=True)
class Overdrawn:
    """The counter that had no room, and how many images it had already counted."""

    use: QuotaUse
    used: int


class QuotaCounter(Protocol):
    """What counts images against quotas (guardrail.audit.quota.QuotaLedger)."""

    def charge(self, uses: Sequence[QuotaUse], images: int, *, commit: bool = True) -> list[int] | Overdrawn:
        """Add `images` to every counter, or to none when one would pass its limit; the new counts, or
        the counter that had no room. `commit=False` answers the same question and counts nothing."""
        ...


def subjects(quota: Quota, request: GenerationRequest) -> list[str]:
    """Whose budget a request draws on for one quota."""
    if quota.per == "user":
        return [request.user or ANONYMOUS]
    if quota.per == "tenant":
        return [request.tenant or ANONYMOUS]
    return [role for role in request.roles if not quota.when.roles or role in quota.when.roles]


def quota_uses(quotas: Sequence[Quota], request: GenerationRequest, now: float) -> list[QuotaUse]:
    """Every counter a request draws on at time `now`, in the policy's order."""
    return [
        QuotaUse(quota, subject, int(now // quota.window_seconds * quota.window_seconds))
        for quota in quotas
        if quota.when.applies(request.user, request.roles)
        for subject in subjects(quota, request)
    ]


def images_charged(request: GenerationRequest, decision: Decision) -> int:
    """The images a call is charged: what it asks for after any clamping by the decision."""
    per_prompt = decision.modified().get("images_per_prompt", request.images_per_prompt)
    return max(1, len(request.prompts)) * int(per_prompt)


def apply_quotas(
    decision: Decision,
    quotas: Sequence[Quota],
    request: GenerationRequest,
    counter: QuotaCounter,
    *,
    commit: bool = True,
    now: float | None = None,
) -> Decision:
    """The decision after charging the images it allows to the policy's quotas: the same with the
    images left in each recorded, or a deny under the exceeded quota's own id (flags stay)."""
    uses = quota_uses(quotas, request, time.time() if now is None else now)
    if not uses:
        return decision
    images = images_charged(request, decision)
    counted = counter.charge(uses, images, commit=commit)
    if isinstance(counted, Overdrawn):
        quota, left = counted.use.quota, max(0, counted.use.quota.images - counted.used)
        detail = (
            f"{quota.per} {counted.use.subject!r}: {images} requested, {left} of {quota.images} left this "
            f"{quota.window}"
        )
        exceeded = FiredRule(quota.id, "deny", quota.message or f"image quota exceeded ({detail})", detail)
        return decision.with_fired([exceeded], quotas={quota.id: left})
    per_quota: dict[str, int] = {}
    for use in uses:
        per_quota[use.quota.id] = per_quota.get(use.quota.id, 0) + 1
    remaining = {
        (f"{use.quota.id}:{use.subject}" if per_quota[use.quota.id] > 1 else use.quota.id): use.quota.images - used
        for use, used in zip(uses, counted, strict=True)
    }
    return replace(decision, quotas=remaining)
