"""The C2PA manifest of a generated image: what made it, from what, and under which governance.

- txt2img (and ControlNet, whose control image only guides): `c2pa.created` with
  digitalSourceType trainedAlgorithmicMedia.
- img2img and inpainting: the start image is the parent ingredient (`parentOf`, referenced by
  `c2pa.opened`), and the generation is `c2pa.edited`, trainedAlgorithmicMedia for img2img and
  compositeWithTrainedAlgorithmicMedia for inpainting (only the masked part is generated).
- masks and control images are ingredients with relationship `inputTo`, referenced by the
  generating action.
- `org.guardrail.governance`: policy, decision, fired rules, audit event id, the prompt as the
  audit log keeps it (an HMAC unless the privacy mode is plaintext), screening and marking (the
  visible label, the watermark's algorithm) when present.
An input that already carries a manifest (opened with guardrail.open_image) keeps it as
ingredient provenance.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from guardrail import __version__
from guardrail.images import encode, opened_from
from guardrail.policy.decision import Decision
from guardrail.privacy import PromptPrivacy
from guardrail.request import GenerationRequest, InputImage

IPTC = "http://cv.iptc.org/newscodes/digitalsourcetype/"
TRAINED = IPTC + "trainedAlgorithmicMedia"
COMPOSITE = IPTC + "compositeWithTrainedAlgorithmicMedia"
GOVERNANCE_LABEL = "org.guardrail.governance"
DISCLOSURE_LABEL = "org.guardrail.disclosure"
TRAINING_MINING_LABEL = "cawg.training-mining"
SOFT_BINDING_LABEL = "c2pa.soft-binding"
AI_DESCRIPTION = "AI-generated image"


@dataclass(frozen=True)
class Disclosure:
    """What every manifest discloses about who and what generated the image (SB 942: provider, system
    name and version, time of creation, a unique identifier; the EU AI Act's machine-readable mark)."""

    provider: str | None = None
    system_name: str | None = None
    system_version: str | None = None
    training_mining: str | None = None
    """allowed | notAllowed | constrained: a CAWG training-and-data-mining assertion, when set."""


@dataclass(frozen=True)
class SoftBinding:
    """A mark in the pixels that binds the image to its manifest after the manifest is stripped: a
    `c2pa.soft-binding` assertion naming the algorithm (with its version) and the value it carries."""

    algorithm: str
    value: bytes

    def assertion(self) -> dict[str, Any]:
        """The assertion (c2pa numbers a second one of an image itself: `c2pa.soft-binding__1`)."""
        import base64

        value = base64.b64encode(self.value).decode()
        return {"label": SOFT_BINDING_LABEL, "data": {"alg": self.algorithm, "blocks": [{"scope": {}, "value": value}]}}


_PARENT_ROLES = ("image",)


def build_manifest(
    request: GenerationRequest,
    decision: Decision,
    *,
    audit_id: str,
    policy_name: str,
    policy_version: str,
    privacy: PromptPrivacy,
    screening: dict[str, Any] | None = None,
    marking: dict[str, Any] | None = None,
    classifiers: dict[str, Any] | None = None,
    disclosure: Disclosure = Disclosure(),
    created: datetime | None = None,
) -> dict[str, Any]:
    """The manifest definition shared by every image of one call (image_manifest adds each image's id)."""
    model = request.model
    when = (created or datetime.now(timezone.utc)).isoformat(timespec="seconds")
    # The software agent of a generative action is the system that generated it: the configured system,
    # else the pipeline and the model's name (never its local path: a manifest leaves the machine).
    adapters = f" + {', '.join(model.adapters)}" if model.adapters else ""
    agent = {
        "name": disclosure.system_name or f"{_model_name(model.name_or_path)} ({model.pipeline_class}){adapters}",
        "version": disclosure.system_version or __version__,
    }
    inpainting = any(i.role == "mask_image" for i in request.input_images)
    labels = _labels(request)
    parents = [label for label, item in labels if item.role in _PARENT_ROLES]
    inputs = {"ingredientIds": [label for label, item in labels if item.role not in _PARENT_ROLES]}
    if parents:
        source_type = COMPOSITE if inpainting else TRAINED
        actions = [
            {"action": "c2pa.opened", "parameters": {"ingredientIds": parents[:1]}},
            {"action": "c2pa.edited", "digitalSourceType": source_type, "softwareAgent": agent},
        ]
    else:
        actions = [{"action": "c2pa.created", "digitalSourceType": TRAINED, "softwareAgent": agent}]
    actions[-1].update(when=when, description=AI_DESCRIPTION)
    if inputs["ingredientIds"]:
        actions[-1]["parameters"] = inputs
    governance = {
        "policy": {"name": policy_name, "version": policy_version},
        "decision": decision.effect,
        "flagged": decision.flagged,
        "rules": list(decision.rule_ids),
        "audit_id": audit_id,
        "model": {"pipeline": model.pipeline_class, "name": model.name_or_path, "adapters": list(model.adapters)},
        "prompt": {"privacy": privacy.mode, "key_id": privacy.key_id, "values": privacy.protect(request.prompts)},
    }
    if screening is not None:
        governance["screening"] = screening
    if marking is not None:  # the visible label drawn and the watermark's algorithm
        governance["marking"] = marking
    if classifiers is not None:  # content classifier scores, and the regions blurred
        governance["classifiers"] = classifiers
    statement = {
        "ai_generated": True,
        "provider": disclosure.provider,
        "system": {"name": agent["name"], "version": agent["version"]},
        "created": when,
    }
    extra = [{"label": DISCLOSURE_LABEL, "data": statement, "created": True}]
    if disclosure.training_mining is not None:
        use = {"use": disclosure.training_mining}
        keys = ("cawg.ai_training", "cawg.ai_generative_training", "cawg.ai_inference", "cawg.data_mining")
        extra.append({"label": TRAINING_MINING_LABEL, "data": {"entries": dict.fromkeys(keys, use)}, "created": True})
    return {
        "claim_generator_info": [{"name": "guardrail", "version": __version__}],
        "title": f"guardrail-{audit_id}",
        # created: stated by the signer (guardrail), not gathered from elsewhere: the AI disclosure
        # and the governance record must be the signer's own assertions
        "assertions": [
            {"label": "c2pa.actions.v2", "data": {"actions": actions}, "created": True},
            {"label": GOVERNANCE_LABEL, "data": governance, "created": True},
            *extra,
        ],
    }


def image_manifest(
    manifest: dict[str, Any], audit_id: str, index: int, soft_bindings: Sequence[SoftBinding] = ()
) -> dict[str, Any]:
    """The call's manifest for image `index`: its disclosure carries the image's unique identifier, and
    its soft bindings the watermark it was marked with and its perceptual fingerprint."""
    assertions = []
    for assertion in manifest["assertions"]:
        if assertion["label"] == DISCLOSURE_LABEL:
            assertion = {**assertion, "data": {**assertion["data"], "id": f"urn:guardrail:{audit_id}:{index}"}}
        assertions.append(assertion)
    assertions += [binding.assertion() for binding in soft_bindings]
    return {**manifest, "assertions": assertions}


def with_review(manifest: dict[str, Any], review: dict[str, Any]) -> dict[str, Any]:
    """The manifest with the human review the images passed recorded in its governance assertion
    (signed when a call held for review is released)."""
    assertions = [
        {**a, "data": {**a["data"], "review": review}} if a["label"] == GOVERNANCE_LABEL else a
        for a in manifest["assertions"]
    ]
    return {**manifest, "assertions": assertions}


def _model_name(name_or_path: str | None) -> str:
    """A model's name as a manifest may show it: a hub id as it is, a local path by its last part."""
    if not name_or_path:
        return "unnamed model"
    path = Path(name_or_path)
    local = path.is_absolute() or name_or_path.startswith((".", "~")) or "\\" in name_or_path or path.exists()
    return path.name if local else name_or_path


def ingredients(request: GenerationRequest) -> list[tuple[dict[str, Any], bytes, str]]:
    """Ingredient definitions with their bytes: the original file where the input was opened with
    guardrail.open_image (so its own manifest comes along), else a PNG of its pixels."""
    found = []
    for label, item in _labels(request):
        data, mime = opened_from(item.image) or (encode(item.image, "PNG"), "image/png")
        relationship = "parentOf" if label == "parent" else "inputTo"
        found.append(({"title": item.role, "relationship": relationship, "format": mime, "label": label}, data, mime))
    return found


def _labels(request: GenerationRequest) -> list[tuple[str, InputImage]]:
    """A label per input image that can become an ingredient; the first start image is the parent
    (a manifest has at most one parentOf ingredient)."""
    labelled: list[tuple[str, InputImage]] = []
    for index, item in enumerate(i for i in request.input_images if i.image is not None):
        is_parent = item.role in _PARENT_ROLES and not any(label == "parent" for label, _ in labelled)
        labelled.append(("parent" if is_parent else f"{item.role}-{index}", item))
    return labelled


def assertion_of(manifest: dict[str, Any], label: str) -> dict[str, Any] | None:
    """The data of a manifest's assertion with this label (read back by c2pa), if it has one. Anyone
    can sign one: treat every field as untrusted (a non-mapping assertion is returned as an empty dict)."""
    found = assertions_of(manifest, label)
    return found[0] if found else None


def assertions_of(manifest: dict[str, Any], label: str) -> list[dict[str, Any]]:
    """The data of every assertion with this label (soft bindings come one per method), untrusted."""
    assertions = manifest.get("assertions") if isinstance(manifest, dict) else None
    return [
        dict(a["data"]) if isinstance(a.get("data"), dict) else {}
        for a in (assertions if isinstance(assertions, list) else [])
        if isinstance(a, dict) and a.get("label") == label
    ]


def governance_of(manifest: dict[str, Any]) -> dict[str, Any] | None:
    """The governance assertion of a manifest, if it has one (untrusted, like every field)."""
    return assertion_of(manifest, GOVERNANCE_LABEL)


def source_types_of(manifest: dict[str, Any]) -> list[str]:
    """The digitalSourceType of each action that has one (IPTC terms: trainedAlgorithmicMedia, ...)."""
    found = []
    for label in ("c2pa.actions.v2", "c2pa.actions"):
        actions = (assertion_of(manifest, label) or {}).get("actions")
        for action in actions if isinstance(actions, list) else []:
            value = action.get("digitalSourceType") if isinstance(action, dict) else None
            if isinstance(value, str):
                found.append(value)
    return found


def governance_summary(governance: dict[str, Any]) -> str:
    """One line for a person: policy, decision and audit id, each shown only when it is what it should
    be (a forged or partial assertion prints what it has, and never raises)."""
    policy = governance.get("policy")
    name = policy.get("name") if isinstance(policy, dict) else None
    parts = [
        f"policy {name}" if isinstance(name, str) else "policy (missing)",
        f"decision {governance['decision']}" if isinstance(governance.get("decision"), str) else "decision (missing)",
        f"audit {governance['audit_id']}" if isinstance(governance.get("audit_id"), str) else "audit id (missing)",
    ]
    return " ".join(parts)
