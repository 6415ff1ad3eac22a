"""Evaluating a policy against a request. All compilation happens once, in PolicyEngine.__init__."""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from guardrail.policy.decision import NOTED, Decision, FiredRule, Modification
from guardrail.policy.schema import Limits, NameList, Policy, Range, Rule, Scope, TermList, TermSpec
from guardrail.policy.text import Term, TextHit, TextMatcher, fold_table, normalize
from guardrail.request import GenerationRequest

PROMPT_EMBEDS_RULE = "guardrail.prompt-embeds"
DEFAULT_DENY_RULE = "guardrail.default-deny"
UNCLAMPABLE_RULE = "guardrail.unclampable"
EVALUATION_ERROR_RULE = "guardrail.evaluation-error"
PROMPT_TOO_LONG_RULE = "guardrail.prompt-too-long"
MAX_PROMPT_CHARS = 100_000
"""Longer prompts are denied unread: it bounds every policy check (matching is linear in the text,
about 25 ms per 100,000 characters per regex here). Text encoders read far less (CLIP 77 tokens)."""

_EVERYONE = Scope()

# Limit name -> (request field it reads, value kind). `images` and `pixels` are derived.
_CLAMPED_FIELDS = {"width": int, "height": int, "steps": int, "guidance": float}


class PolicyEngine:
    """A compiled policy. `evaluate` is pure and thread-safe."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.version = policy.version
        terms: list[Term[int]] = []
        regexes: list[tuple[str, int]] = []
        for index, rule in enumerate(policy.rules):
            if rule.prompt is None:
                continue
            terms += _terms(rule.prompt.terms, rule.prompt.match, tuple(rule.prompt.unless), index)
            for name in rule.prompt.term_lists:
                listed = policy.term_lists[name]
                entries, mode, unless = (
                    (listed.terms, listed.match, listed.unless)
                    if isinstance(listed, TermList)
                    else (listed, "inflected", [])
                )
                exact = "exact" if "exact" in (mode, rule.prompt.match) else "inflected"
                terms += _terms(entries, exact, (*rule.prompt.unless, *unless), index)
            regexes += [(pattern, index) for pattern in rule.prompt.regex]
        self._matcher = TextMatcher(terms, regexes)
        fold_table()  # built once, here, rather than on the first non-ASCII prompt
        self.needs_weight_hashes = any(
            names.allow_sha256 or names.deny_sha256
            for rule in policy.rules
            for names in (rule.models, rule.adapters)
            if names is not None
        )
        """Whether any rule lists model or adapter SHA-256s (then local weight files are hashed)."""
        self._conditions = [i for i, rule in enumerate(policy.rules) if rule.prompt is None]
        self._scoped = [i for i, rule in enumerate(policy.rules) if rule.when != _EVERYONE]
        self._text_fields = {f for rule in policy.rules if rule.prompt for f in rule.prompt.fields}
        self._negative_terms = {
            i: [(t, normalize(t)) for t in rule.require_negative]
            for i, rule in enumerate(policy.rules)
            if rule.require_negative
        }

    def evaluate(self, request: GenerationRequest) -> Decision:
        """Judge a request. Never raises: a request that cannot be judged is denied, with the error."""
        try:
            return self._evaluate(request)
        except Exception as exc:  # fail closed, and say why
            message = f"the policy could not be evaluated: {type(exc).__name__}: {exc}"
            return Decision("deny", (FiredRule(EVALUATION_ERROR_RULE, "deny", message),), errors=(message,))

    def _evaluate(self, request: GenerationRequest) -> Decision:
        longest = max(map(len, (*request.prompts, *request.negative_prompts)), default=0)
        if longest > MAX_PROMPT_CHARS:
            message = f"a prompt of {longest} characters is longer than the {MAX_PROMPT_CHARS} a policy checks"
            return Decision("deny", (FiredRule(PROMPT_TOO_LONG_RULE, "deny", message),))
        fired: list[FiredRule] = []
        modifications: list[Modification] = []
        rules = self.policy.rules
        in_scope = [True] * len(rules)
        for index in self._scoped:
            in_scope[index] = rules[index].when.applies(request.user, request.roles)

        suppressed: list[FiredRule] = []
        for index, field, hit in sorted(self._text_hits(request), key=lambda h: h[0]):
            rule = rules[index]
            if in_scope[index] and field in rule.prompt.fields:  # type: ignore[union-attr]
                detail = f"{field} {hit.kind} {hit.pattern!r} matched {hit.matched!r}"
                if hit.suppressed_by is None:
                    fired.append(_fire(rule, detail))
                else:
                    suppressed.append(_fire(rule, f"{detail} inside the exception {hit.suppressed_by!r}"))
        fired_ids = {rule.id for rule in fired}
        suppressed = [rule for rule in suppressed if rule.id not in fired_ids]

        for index in self._conditions:
            rule = rules[index]
            if not in_scope[index]:
                continue
            if rule.limits is not None:
                self._check_limits(rule, rule.limits, request, fired, modifications)
            elif rule.require_negative is not None:
                self._require_negative(index, rule, request, fired, modifications)
            elif rule.models is not None:
                detail = _list_violation(rule.models, [request.model.name_or_path or ""], request.model.weight_sha256)
                if detail:
                    fired.append(_fire(rule, f"model {detail}"))
            elif rule.adapters is not None:
                adapters = request.model.adapters
                detail = _list_violation(rule.adapters, list(adapters), request.model.adapter_sha256)
                if adapters and detail:
                    fired.append(_fire(rule, f"adapter {detail}"))
            else:
                fired.append(_fire(rule, "in scope"))

        if request.has_prompt_embeds and self.policy.prompt_embeds != "allow":
            fired.append(
                FiredRule(
                    PROMPT_EMBEDS_RULE,
                    self.policy.prompt_embeds,
                    "prompt embeddings were given without text, so the prompt cannot be checked",
                )
            )
        decision = _combine(fired, modifications, self.policy.default)
        return replace(decision, suppressed=tuple(suppressed)) if suppressed else decision

    def _text_hits(self, request: GenerationRequest) -> list[tuple[int, str, TextHit[int]]]:
        hits: list[tuple[int, str, TextHit[int]]] = []
        for field, texts in (("prompt", request.prompts), ("negative_prompt", request.negative_prompts)):
            if field not in self._text_fields:
                continue
            for text in texts:
                hits += [(h.value, field, h) for h in self._matcher.find(text)]
        return hits

    def _check_limits(
        self,
        rule: Rule,
        limits: Limits,
        request: GenerationRequest,
        fired: list[FiredRule],
        modifications: list[Modification],
    ) -> None:
        clamp = rule.effect == "modify"
        values: dict[str, Any] = {name: getattr(request, name) for name in _CLAMPED_FIELDS}
        for name, kind in _CLAMPED_FIELDS.items():
            bound = getattr(limits, name)
            value = values[name]
            if bound is None or value is None or _within(value, bound):
                continue
            if not clamp:
                fired.append(_fire(rule, f"{name}={value} outside {_describe(bound)}"))
                continue
            if name not in request.adjustable:
                fired.append(
                    _unclampable(f"{name}={value} is outside {_describe(bound)} and this call cannot change it")
                )
                continue
            new = _clamp(value, bound, kind, multiple_of_8=name in ("width", "height"))
            values[name] = new
            modifications.append(Modification(name, value, new, rule.id))
            fired.append(_fire(rule, f"{name} {value} -> {new}"))
        if limits.pixels is not None and values["width"] and values["height"]:
            pixels = values["width"] * values["height"]
            if not _within(pixels, limits.pixels):
                if not clamp or limits.pixels.max is None or pixels < (limits.pixels.min or 0):
                    fired.append(_fire(rule, f"pixels={pixels} outside {_describe(limits.pixels)}"))
                elif not {"width", "height"} <= request.adjustable:
                    fired.append(
                        _unclampable(f"pixels={pixels} is over {limits.pixels.max} and this call cannot change it")
                    )
                else:
                    scale = math.sqrt(limits.pixels.max / pixels)
                    for name in ("width", "height"):
                        new = max(8, int(values[name] * scale) // 8 * 8)
                        modifications.append(Modification(name, values[name], new, rule.id))
                        values[name] = new
                    fired.append(_fire(rule, f"pixels {pixels} -> {values['width'] * values['height']}"))
        if limits.images is not None and not _within(request.image_count, limits.images):
            prompts = max(1, len(request.prompts))
            allowed_per_prompt = int(limits.images.max // prompts) if limits.images.max is not None else 0
            can_clamp = "images_per_prompt" in request.adjustable and allowed_per_prompt >= 1
            if clamp and can_clamp and request.image_count > (limits.images.max or 0):
                modifications.append(
                    Modification("images_per_prompt", request.images_per_prompt, allowed_per_prompt, rule.id)
                )
                fired.append(_fire(rule, f"images {request.image_count} -> {allowed_per_prompt * prompts}"))
            elif clamp:
                fired.append(_unclampable(f"images={request.image_count} is outside {_describe(limits.images)}"))
            else:
                fired.append(_fire(rule, f"images={request.image_count} outside {_describe(limits.images)}"))

    def _require_negative(
        self,
        index: int,
        rule: Rule,
        request: GenerationRequest,
        fired: list[FiredRule],
        modifications: list[Modification],
    ) -> None:
        required = self._negative_terms[index]
        negatives = list(request.negative_prompts) or [""]
        if len(negatives) == 1 and len(request.prompts) > 1:
            negatives = negatives * len(request.prompts)
        updated = []
        for text in negatives:
            present = f" {normalize(text)} "
            missing = [term for term, key in required if f" {key} " not in present]
            updated.append(", ".join(filter(None, [text.strip(), *missing])))
        if updated == negatives:
            return
        if request.has_negative_prompt_embeds or "negative_prompts" not in request.adjustable:
            fired.append(_unclampable("required negative terms cannot be added to this call's negative prompt"))
            return
        modifications.append(Modification("negative_prompts", list(request.negative_prompts), updated, rule.id))
        fired.append(_fire(rule, "appended required negative terms"))


def _terms(entries: list[str | TermSpec], mode: str, unless: tuple[str, ...], index: int) -> list[Term[int]]:
    """A rule's terms for the matcher: a term is inflected unless it, its list or its rule is exact."""
    found = []
    for entry in entries:
        text, own = (entry.term, entry.match) if isinstance(entry, TermSpec) else (entry, "inflected")
        found.append(Term(text, index, inflect="exact" not in (mode, own), unless=unless))
    return found


def _fire(rule: Rule, detail: str) -> FiredRule:
    return FiredRule(rule.id, rule.effect, rule.message or rule.description or detail, detail)


def _unclampable(detail: str) -> FiredRule:
    return FiredRule(UNCLAMPABLE_RULE, "deny", f"the policy requires a change this call cannot take: {detail}", detail)


def _within(value: float, bound: Range) -> bool:
    return (bound.min is None or value >= bound.min) and (bound.max is None or value <= bound.max)


def _describe(bound: Range) -> str:
    return f"[{'' if bound.min is None else bound.min}, {'' if bound.max is None else bound.max}]"


def _clamp(value: float, bound: Range, kind: Callable[[float], Any], *, multiple_of_8: bool) -> Any:
    low = -math.inf if bound.min is None else bound.min
    high = math.inf if bound.max is None else bound.max
    new = min(max(value, low), high)
    if multiple_of_8:
        new = math.floor(new / 8) * 8 if new == high else math.ceil(new / 8) * 8
    elif kind is int:
        new = math.floor(new) if new == high else math.ceil(new)
    return kind(new)


def _list_violation(names: NameList, values: list[str], hashes: dict[str, str]) -> str:
    """Why the values break the list, or '' when they do not."""
    digests = set(hashes.values())
    for value in values:
        if any(fnmatch.fnmatchcase(value, pattern) for pattern in names.deny):
            return f"{value!r} is on the deny list"
        allowed = any(fnmatch.fnmatchcase(value, pattern) for pattern in names.allow)
        if names.allow and not allowed and not digests & set(names.allow_sha256):
            return f"{value!r} is not on the allow list"
    denied = digests & set(names.deny_sha256)
    if denied:
        return f"weights with SHA-256 {sorted(denied)[0][:16]}... are on the deny list"
    if names.allow_sha256 and not names.allow and not digests & set(names.allow_sha256):
        return "no weight file matches the SHA-256 allow list"
    return ""


def _combine(fired: list[FiredRule], modifications: list[Modification], default: str) -> Decision:
    if any(rule.effect == "deny" for rule in fired):
        return Decision("deny", tuple(rule for rule in fired if rule.effect in ("deny", *NOTED)))
    if default == "deny" and not any(rule.effect == "allow" for rule in fired):
        denial = FiredRule(DEFAULT_DENY_RULE, "deny", "no rule allows this request (the policy denies by default)")
        return Decision("deny", (*(rule for rule in fired if rule.effect in NOTED), denial))
    return Decision("modify" if modifications else "allow", tuple(fired), tuple(modifications))


def shadow_notes(shadow: PolicyEngine | None, request: GenerationRequest, decision: Decision) -> dict[str, Any]:
    """What the audit outcome records of a candidate policy run beside the active one: its decision,
    only where the two disagree (effect, fired rules or modifications). Nothing else changes."""
    if shadow is None:
        return {}
    candidate = shadow.evaluate(request)
    same = (
        candidate.effect == decision.effect
        and set(candidate.rule_ids) == set(decision.rule_ids)
        and candidate.modified() == decision.modified()
    )
    if same:
        return {}
    return {"shadow": {"policy": shadow.policy.name, "version": shadow.version, "decision": candidate.as_dict()}}
