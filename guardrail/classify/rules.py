"""Deciding on classifier scores: which of the policy's classifier rules fire for which images, and
which regions to blur. Decisions as data: the scores and the thresholds they met go into the fired
rules' detail, the audit event and the manifest."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from guardrail.classify.base import Detection
from guardrail.policy.decision import FiredRule

EFFECTS = {"block": "deny", "flag": "flag", "review": "review", "blur": "flag"}
"""A rule's action -> the effect of its fired rule (a blur returns the image changed, and flagged)."""


@dataclass(frozen=True)
class Judgement:
    fired: list[FiredRule] = field(default_factory=list)
    blur: dict[int, list[tuple[int, int, int, int]]] = field(default_factory=dict)
    """Image index -> the boxes to blur in it."""


def applicable(rules: Mapping[str, Any], user: str | None, roles: tuple[str, ...], role: str) -> dict[str, Any]:
    """The rules that apply to this caller, for outputs or (role "input") for inputs."""
    return {
        name: rule
        for name, rule in rules.items()
        if rule.when.applies(user, roles) and (role == "output" or rule.inputs)
    }


def judge(
    rules: Mapping[str, Any], found: Mapping[str, Sequence[Sequence[Detection]]], role: str, *, first: int = 0
) -> Judgement:
    """The rules that fire on the detections (`found`: model -> per image detections, the first being
    image `first` of the call). One fired rule per rule, naming every image and label that met its
    threshold."""
    judgement = Judgement()
    for name, rule in rules.items():
        hits = []
        for index, detections in enumerate(found[rule.model], start=first):
            for d in detections:
                threshold = rule.labels.get(d.label)
                if threshold is not None and d.score >= threshold:
                    hits.append((index, d, threshold))
                    if rule.action == "blur" and d.box is not None:
                        judgement.blur.setdefault(index, []).append(d.box)
        if not hits:
            continue
        detail = "; ".join(f"{role} image {i} {d.label} {d.score:.3f} >= {t:g}" for i, d, t in hits)
        labels = ", ".join(dict.fromkeys(d.label for _, d, _ in hits))
        verb = {"block": "blocked", "blur": "blurred", "review": "sent to review", "flag": "flagged"}[rule.action]
        message = rule.message or f"{verb}: {rule.model} found {labels}"
        judgement.fired.append(FiredRule(f"classifier.{name}", EFFECTS[rule.action], message, detail))
    return judgement


def run_models(
    rules: Mapping[str, Any], classify: Callable[[str], tuple[str, list[list[Detection]]]]
) -> tuple[dict[str, list[list[Detection]]], dict[str, str]]:
    """(model -> each image's detections, model -> its identity) for every model the rules name, each
    run once through `classify(model)`, which returns (identity, detections)."""
    found, identities = {}, {}
    for model in sorted({rule.model for rule in rules.values()}):
        identities[model], found[model] = classify(model)
    return found, identities


def summary(found: Mapping[str, Sequence[Sequence[Detection]]], identities: Mapping[str, str]) -> list[dict[str, Any]]:
    """What the audit event and the manifest record: per image, each model's detections with scores."""
    count = max((len(per_image) for per_image in found.values()), default=0)
    return [
        {
            model: {"identity": identities[model], "found": [d.as_dict() for d in per_image[i]]}
            for model, per_image in found.items()
        }
        for i in range(count)
    ]


def preview(
    policy: Any, classifiers: Any, images: Sequence[Any], *, user: str | None = None, roles: tuple[str, ...] = ()
) -> list[dict[str, Any]]:
    """What the policy's classifier rules would decide for each image, as output of a call by `user`
    with `roles` (`guardrail classify`): per image the scores of each model the applicable rules name,
    the rules that fire and the resulting action (block, review, blur, flag or allow)."""
    rules = applicable(policy.classifiers, user, roles, "output")

    def run(model: str) -> tuple[str, list[list[Detection]]]:
        classifier = classifiers.get(model)
        return classifier.identity, classifier.classify(list(images))

    found, identities = run_models(rules, run)
    results = []
    for index, scores in enumerate(summary(found, identities) or [{} for _ in images]):
        one = {model: [per_image[index]] for model, per_image in found.items()}
        fired = judge(rules, one, "output", first=index).fired
        actions = {rules[rule.id.removeprefix("classifier.")].action for rule in fired}
        action = next((a for a in ("block", "review", "blur", "flag") if a in actions), "allow")
        results.append({"scores": scores, "fired": [rule.as_dict() for rule in fired], "action": action})
    return results
