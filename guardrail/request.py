"""The typed objects that travel through one guarded call and that several layers share: the request
read from the call, the call's context (id, policy, prompt privacy), signed images, the governance
attached to the result. Every layer may import this module; it imports none of them at run time."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from guardrail.privacy import PromptPrivacy

if TYPE_CHECKING:
    from guardrail.policy.decision import Decision
    from guardrail.screening.screen import Match


ADJUSTABLE_FIELDS = frozenset({"width", "height", "steps", "guidance", "images_per_prompt", "negative_prompts"})


@dataclass(frozen=True)
class ModelIdentity:
    """What generated the image: enough to tell a compliance analyst which weights were used."""

    pipeline_class: str
    name_or_path: str | None = None
    dtype: str | None = None
    quantization: dict[str, Any] | None = None
    adapters: tuple[str, ...] = ()
    """Loaded LoRA / PEFT adapter names."""
    weight_sha256: dict[str, str] = field(default_factory=dict)
    """Model weight file name -> SHA-256, where guardrail could hash the files."""
    adapter_sha256: dict[str, str] = field(default_factory=dict)
    """Adapter name -> SHA-256 of the file it was loaded from, for adapters loaded through the wrapper."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "pipeline_class": self.pipeline_class,
            "name_or_path": self.name_or_path,
            "dtype": self.dtype,
            "quantization": self.quantization,
            "adapters": list(self.adapters),
            "weight_sha256": dict(self.weight_sha256),
            "adapter_sha256": dict(self.adapter_sha256),
        }


@dataclass(frozen=True)
class InputImage:
    """An image given to the pipeline (img2img start, inpaint mask, ControlNet control image)."""

    role: str
    sha256: str
    width: int | None = None
    height: int | None = None
    image: Any = field(default=None, repr=False, compare=False)
    """The image object itself (for C2PA ingredients); never written to the audit log."""

    def as_dict(self) -> dict[str, Any]:
        return {"role": self.role, "sha256": self.sha256, "width": self.width, "height": self.height}


@dataclass(frozen=True)
class GenerationRequest:
    """One call to a generator, read into plain data a policy can judge.

    `prompts` holds every positive prompt (each list entry, and `prompt_2` entries for SDXL);
    `has_prompt_embeds` is true when the caller passed embeddings whose text cannot be checked.
    """

    prompts: tuple[str, ...] = ()
    negative_prompts: tuple[str, ...] = ()
    has_prompt_embeds: bool = False
    has_negative_prompt_embeds: bool = False
    width: int | None = None
    height: int | None = None
    steps: int | None = None
    guidance: float | None = None
    images_per_prompt: int = 1
    seeds: tuple[int, ...] = ()
    input_images: tuple[InputImage, ...] = ()
    model: ModelIdentity = field(default_factory=lambda: ModelIdentity(pipeline_class="unknown"))
    user: str | None = None
    roles: tuple[str, ...] = ()
    tenant: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    """Other scalar call arguments, for the audit record."""
    adjustable: frozenset[str] = ADJUSTABLE_FIELDS
    """The fields a modify decision can change in this call (a callable may not take `width`, say)."""

    @property
    def image_count(self) -> int:
        """How many images the call asks for in total."""
        return max(1, len(self.prompts) or 1) * self.images_per_prompt

    @property
    def pixels(self) -> int | None:
        return self.width * self.height if self.width and self.height else None

    def parameters(self) -> dict[str, Any]:
        """The generation parameters as one flat dict (what policies limit and the audit log records)."""
        return {
            "width": self.width,
            "height": self.height,
            "steps": self.steps,
            "guidance": self.guidance,
            "images_per_prompt": self.images_per_prompt,
            "seeds": list(self.seeds),
            **self.params,
        }


@dataclass(frozen=True)
class CallContext:
    """What every audit event, manifest and stage of one call shares: its id, the request, the policy in
    force for the whole call, and how its prompts may be recorded."""

    call_id: str
    request: GenerationRequest
    policy_name: str
    policy_version: str
    privacy: PromptPrivacy


@dataclass(frozen=True)
class SignedImage:
    """C2PA-signed image bytes and what identifies them."""

    data: bytes = field(repr=False)
    mime: str
    manifest_label: str
    sha256: str

    def save(self, path: str | Path) -> Path:
        """Write the signed bytes as they are (any re-encoding would strip the manifest). Writes a file."""
        target = Path(path)
        target.write_bytes(self.data)
        return target


@dataclass(frozen=True)
class Governance:
    """What guardrail decided about a call, attached to its result as `.governance`."""

    audit_id: str
    decision: Decision
    policy_name: str
    policy_version: str
    output_sha256: tuple[str, ...] = ()
    signed: tuple[SignedImage, ...] = ()
    """C2PA-signed bytes of each image, when the Guard has a signer."""
    matches: tuple[tuple[Match, ...], ...] = ()
    """Per image, the protected references it resembles (flagged: returned; sent to review: held)."""
    pending_review: bool = False
    """The images are held until reviewers approve them (`guard.review_result(audit_id)` then)."""

    @property
    def rule_ids(self) -> tuple[str, ...]:
        return self.decision.rule_ids

    @property
    def allowed(self) -> bool:
        return self.decision.allowed

    def save(self, index: int, path: str | Path) -> Path:
        """Write image `index` as its signed bytes, untouched (re-encoding would strip the manifest).
        Writes a file."""
        if not self.signed:
            raise ValueError("these images were not signed: configure `provenance` in guardrail.yaml")
        return self.signed[index].save(path)


@dataclass(frozen=True)
class GuardedResult:
    """The result of a guarded plain callable, or of a denied call when the Guard returns instead of raising.

    Iterating, indexing and len() go to `images`, so code that used the callable's list keeps working.
    """

    images: list[Any]
    governance: Governance

    def __iter__(self) -> Iterator[Any]:
        return iter(self.images)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> Any:
        return self.images[index]
