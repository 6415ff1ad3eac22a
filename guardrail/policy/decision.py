"""A policy decision as data: the effect, the rules that produced it, and what it changed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

Outcome = Literal["allow", "modify", "deny"]
NOTED = ("flag", "review")
"""Effects that let a call go on and are kept beside a deny: flag (returned, marked) and review
(generated, then held until people approve)."""


@dataclass(frozen=True)
class FiredRule:
    """A rule whose condition held for a request."""

    id: str
    effect: str
    message: str
    detail: str = ""
    """What triggered it: the normalised text that matched, or the parameter and its value."""

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "effect": self.effect, "message": self.message, "detail": self.detail}


@dataclass(frozen=True)
class Modification:
    """One change a modify rule makes to the call before it runs."""

    field: str
    """A GenerationRequest field: width, height, steps, guidance, images_per_prompt or negative_prompts."""
    before: Any
    after: Any
    rule_id: str

    def as_dict(self) -> dict[str, Any]:
        return {"field": self.field, "before": self.before, "after": self.after, "rule_id": self.rule_id}


@dataclass(frozen=True)
class Decision:
    """allow, modify or deny; deny overrides. `errors` lists what could not be decided (and so denied)."""

    effect: Outcome
    fired: tuple[FiredRule, ...] = ()
    modifications: tuple[Modification, ...] = ()
    errors: tuple[str, ...] = ()
    quotas: dict[str, int] = field(default_factory=dict)
    """Images left in each quota the call was charged against (or in the one it exceeded)."""
    suppressed: tuple[FiredRule, ...] = ()
    """Rules whose every term match lay inside one of their exception phrases (`unless`): not fired."""

    @property
    def allowed(self) -> bool:
        return self.effect != "deny"

    @property
    def flagged(self) -> bool:
        return any(rule.effect == "flag" for rule in self.fired)

    @property
    def review(self) -> bool:
        """An allowed call whose images are held until reviewers approve them."""
        return self.allowed and any(rule.effect == "review" for rule in self.fired)

    @property
    def rule_ids(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(rule.id for rule in self.fired))

    @property
    def messages(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(rule.message for rule in self.fired if rule.message))

    def with_fired(self, fired: Sequence[FiredRule], *, quotas: dict[str, int] | None = None) -> Decision:
        """This decision after later checks (concepts, screening, quotas) fired more rules: a deny among
        them overrides (the rules that already denied or flagged stay), flags are added. `quotas`
        replaces what is recorded of the quotas."""
        quotas = self.quotas if quotas is None else quotas
        if any(rule.effect == "deny" for rule in fired):
            kept = tuple(rule for rule in self.fired if rule.effect in ("deny", *NOTED))
            return Decision("deny", (*kept, *fired), errors=self.errors, quotas=quotas)
        return replace(self, fired=(*self.fired, *fired), quotas=quotas)

    def same_as(self, other: Decision) -> bool:
        """Whether two decisions agree: the same effect, fired rule ids and modified values."""
        return (
            self.effect == other.effect
            and set(self.rule_ids) == set(other.rule_ids)
            and self.modified() == other.modified()
        )

    def modified(self) -> dict[str, Any]:
        """Field -> value after modification."""
        return {m.field: m.after for m in self.modifications}

    def as_dict(self) -> dict[str, Any]:
        return {
            "decision": self.effect,
            "flagged": self.flagged,
            "rules": list(self.rule_ids),
            "messages": list(self.messages),
            "fired": [rule.as_dict() for rule in self.fired],
            "modified": {m.field: m.after for m in self.modifications},
            "modifications": [m.as_dict() for m in self.modifications],
            "errors": list(self.errors),
            "quota_remaining": dict(self.quotas),
            "suppressed": [rule.as_dict() for rule in self.suppressed],
        }
