"""guardrail.yaml: where the policy, the audit database and the keys are. Strict: unknown keys are errors."""

from __future__ import annotations

import os
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from guardrail.errors import ConfigError
from guardrail.policy.load import read_text_file, read_yaml, validate
from guardrail.policy.schema import Policy

if TYPE_CHECKING:
    from guardrail.provenance.signing import ImageSigner
from guardrail.privacy import KEY_ENV


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PrivacyConfig(_Strict):
    hmac_key_file: str | None = None
    """Hex key for prompt HMACs; GUARDRAIL_HMAC_KEY is used when this is not set."""


class SystemConfig(_Strict):
    """The generative AI system, as latent disclosures name it (California SB 942)."""

    name: str = Field(min_length=1, max_length=200)
    version: str = Field(default="", max_length=100)


class ProvenanceConfig(_Strict):
    """The C2PA signer: a certificate chain (PEM, signer first) and its private key (PKCS#8 PEM)."""

    certificate_chain: str
    private_key: str
    algorithm: Literal["es256", "es384", "es512", "ps256", "ps384", "ps512", "ed25519"] = "es256"
    timestamp_url: str | None = Field(default=None, pattern=r"^https?://[^\s]+$")
    """An RFC 3161 time-stamping authority (http or https): each signature is countersigned with the
    time, so it stays valid after the signing certificate expires (trust the authority's root too)."""
    format: Literal["png", "jpeg", "webp"] = "png"
    jpeg_quality: int = Field(default=95, ge=1, le=100)
    thumbnail: bool = False
    """A small JPEG thumbnail in the manifest (off: it costs time and bytes)."""
    trust_anchors: str | None = None
    """PEM of the roots `guardrail verify` trusts by default."""
    provider: str | None = Field(default=None, min_length=1, max_length=200)
    """Who provides the generator (SB 942's provider name), in every manifest's disclosure."""
    system: SystemConfig | None = None
    """The generative system's name and version, in every manifest's disclosure and software agent."""
    training_mining: Literal["allowed", "notAllowed", "constrained"] | None = None
    """A CAWG training-and-data-mining assertion in every manifest: may the images be used to train AI?"""


class AuditConfig(_Strict):
    checkpoint_key_file: str | None = None
    """Ed25519 key that signs checkpoints of the hash chain (its .pub beside it verifies them)."""
    checkpoint_every: int = Field(default=1000, ge=1)
    checkpoint_interval_s: float = Field(default=60.0, gt=0)
    retention_days: float | None = Field(default=None, gt=0)
    """`guardrail audit purge` erases personal data older than this (hashes stay)."""


class EmbeddingConfig(_Strict):
    """The CLIP model (open-clip-torch) for the embedding tier and prompt concepts. Weights come only
    from `checkpoint`, a local file; without one the tier is off (with a warning)."""

    model: str = "ViT-B-32"
    checkpoint: str | None = None
    random_weights: bool = False
    """Random weights, for tests of the mechanics only: their embeddings carry no meaning."""
    device: str = Field(default="auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$")
    """auto (CUDA when available), cpu, cuda, cuda:1, ..."""
    half: bool = True
    """fp16 on a GPU (ignored on the CPU)."""
    batch_size: int = Field(default=16, ge=1)

    @property
    def has_weights(self) -> bool:
        """A checkpoint, or random weights asked for: without either the embedding tier is off."""
        return self.checkpoint is not None or self.random_weights


class ScreeningConfig(_Strict):
    reference_sets: dict[str, str] = {}
    """Name -> folder of a reference set built with `guardrail refs add`."""
    embedding: EmbeddingConfig | None = None


class ClassifierConfig(_Strict):
    """A content classifier from local files. nudenet: NudeNet's detector (the package's weights, or
    `path`); onnx: an image classifier, one output score per label; safety-checker: diffusers' Stable
    Diffusion safety checker from a model folder (`path`), with scores (label nsfw, concept-0..16)."""

    kind: Literal["nudenet", "onnx", "safety-checker"]
    path: str | None = None
    labels: list[str] = []
    """onnx: the label of each output, in order."""
    size: int = Field(default=224, ge=8, le=4096)
    mean: list[float] = Field(default=[0.0, 0.0, 0.0], min_length=3, max_length=3)
    std: list[float] = Field(default=[1.0, 1.0, 1.0], min_length=3, max_length=3)
    activation: Literal["softmax", "sigmoid", "none"] = "softmax"

    @model_validator(mode="after")
    def _complete(self) -> ClassifierConfig:
        if self.kind == "onnx" and (self.path is None or not self.labels):
            raise ValueError("an onnx classifier needs `path` (the model file) and `labels` (one per output)")
        if self.kind == "safety-checker" and self.path is None:
            raise ValueError("a safety-checker classifier needs `path`: the model folder with safety_checker/")
        if any(value == 0 for value in self.std):
            raise ValueError("std values divide the pixels: none may be 0")
        return self


class ReviewConfig(_Strict):
    folder: str = "review"
    """Where images held for review are kept (owner-only, named by content hash) until approved or rejected."""
    on_review: Literal["raise", "return"] = "return"
    """A call held for review returns a result with no images (return) or raises PendingReview (raise)."""


class GuardConfig(_Strict):
    policy: str = "policies/default.yaml"
    environment: str | None = None
    """Which of the policy's `environments` to apply (e.g. prod); none by default."""
    reload: bool = False
    """Follow edits of the policy files: a valid edit applies to the next call, an invalid one is refused."""
    reload_interval_s: float = Field(default=1.0, ge=0)
    shadow_policy: str | None = None
    """A candidate policy evaluated beside the active one; disagreements are recorded, nothing else changes."""
    database: str = "guardrail.db"
    """A SQLAlchemy URL (sqlite:///..., postgresql+psycopg://...) or a SQLite file path."""
    on_deny: Literal["raise", "return"] = "raise"
    migrate: Literal["auto", "check"] = "auto"
    """auto: bring the audit schema up to date at start; check: refuse to start unless it is."""
    durability: Literal["outcome", "full"] = "outcome"
    """SQLite: outcome fsyncs each call's outcome event (and so all before it); full fsyncs every event."""
    privacy: PrivacyConfig = PrivacyConfig()
    audit: AuditConfig = AuditConfig()
    screening: ScreeningConfig = ScreeningConfig()
    provenance: ProvenanceConfig | None = None
    review: ReviewConfig = ReviewConfig()
    preview_decoder: str | None = None
    """A local TAESD (diffusers AutoencoderTiny) folder: sharper latent previews for the policy's early
    abort than the fitted linear map."""
    classifiers: dict[str, ClassifierConfig] = {}
    """Content classifiers the policy's `classifiers` rules name (nudenet is built in with its extra)."""
    base_dir: str = "."
    """Folder that relative paths resolve against: the config file's folder when loaded from a file."""

    def trust_anchors_pem(self) -> str | None:
        """The PEM of the roots this configuration trusts (provenance.trust_anchors), if any. Reads a file."""
        p = self.provenance
        if p is None or p.trust_anchors is None:
            return None
        path = self.path(p.trust_anchors)
        if not path.is_file():
            raise ConfigError(f"{path}: trust anchors file not found (provenance.trust_anchors in guardrail.yaml)")
        return path.read_text(encoding="utf-8")

    def signer(self, trust_anchors: str | None = None) -> ImageSigner | None:
        """The C2PA signer the `provenance` section describes, if any. Reads the key files."""
        from guardrail.provenance.manifest import Disclosure
        from guardrail.provenance.signing import ImageSigner

        p = self.provenance
        if p is None:
            return None
        return ImageSigner.from_files(
            self.path(p.certificate_chain),
            self.path(p.private_key),
            algorithm=p.algorithm,
            timestamp_url=p.timestamp_url,
            output_format=p.format,
            jpeg_quality=p.jpeg_quality,
            thumbnail=p.thumbnail,
            trust_anchors=trust_anchors,
            disclosure=Disclosure(
                provider=p.provider,
                system_name=p.system.name if p.system else None,
                system_version=p.system.version if p.system else None,
                training_mining=p.training_mining,
            ),
        )

    def path(self, value: str) -> Path:
        p = Path(value).expanduser()
        return p if p.is_absolute() else Path(self.base_dir) / p


@dataclass(frozen=True)
class Capabilities:
    """What a Guard, or the Guard a guardrail.yaml would build, offers the policies it enforces."""

    reference_sets: Collection[str]
    embedding: bool
    """An embedding model with weights (the CLIP tier and concept rules)."""
    signer: bool
    hmac_key: bool
    classifiers: Collection[str] = frozenset()

    @classmethod
    def of(cls, config: GuardConfig) -> Capabilities:
        embedding = config.screening.embedding
        return cls(
            reference_sets=frozenset(config.screening.reference_sets),
            embedding=embedding is not None and embedding.has_weights,
            signer=config.provenance is not None,
            hmac_key=config.privacy.hmac_key_file is not None or bool(os.environ.get(KEY_ENV)),
            classifiers=_classifier_names(config),
        )


def _classifier_names(config: GuardConfig) -> frozenset[str]:
    """The classifiers a Guard built from `config` offers: the same names its ClassifierSet gives."""
    from guardrail.classify.loader import ClassifierSet

    return ClassifierSet(config.classifiers).names


def policy_gaps(policy: Policy, offered: Capabilities) -> list[tuple[list[str | int], str]]:
    """What a policy asks for that a Guard cannot do: (field path in the policy, why). The Guard
    refuses such a policy at start and on reload; `policy validate` reports each at file:line."""
    gaps: list[tuple[list[str | int], str]] = []
    configured = ", ".join(sorted(offered.reference_sets)) or "none"
    for name in sorted(set(policy.screening.sets) - set(offered.reference_sets)):
        gaps.append(
            (
                ["screening", "sets", name],
                f"unknown reference set {name!r} (configured: {configured}); "
                "add it under screening.reference_sets in guardrail.yaml",
            )
        )
    if policy.screening.concepts and not offered.embedding:
        gaps.append(
            (
                ["screening", "concepts"],
                "concept rules need an embedding model with a checkpoint: add screening.embedding "
                "(model and checkpoint) to guardrail.yaml or pass embedder= to Guard",
            )
        )
    if policy.provenance.required and not offered.signer:
        gaps.append(
            (
                ["provenance", "required"],
                "the policy requires signed images (provenance.required) but no signer is configured: "
                "add a `provenance` section to guardrail.yaml or pass signer= to Guard",
            )
        )
    offered_classifiers = ", ".join(sorted(offered.classifiers)) or "none"
    for name, rule in sorted(policy.classifiers.items()):
        if rule.model not in offered.classifiers:
            gaps.append(
                (
                    ["classifiers", name, "model"],
                    f"unknown classifier {rule.model!r} (configured: {offered_classifiers}); add it under "
                    "classifiers in guardrail.yaml (nudenet comes with pip install 'guardrail[nudenet]')",
                )
            )
    gaps += file_gaps(policy)
    if policy.privacy.prompts == "hmac" and not offered.hmac_key:
        gaps.append(
            (
                ["privacy", "prompts"],
                "prompts are stored as keyed HMACs (privacy.prompts: hmac) but no key is configured: set "
                f"privacy.hmac_key_file in guardrail.yaml, set {KEY_ENV}, or pass hmac_key= to Guard",
            )
        )
    return gaps


def file_gaps(policy: Policy) -> list[tuple[list[str | int], str]]:
    """Files a policy names that cannot be used (the visible label's font), whatever the Guard offers."""
    label = policy.marking.label
    if label is None or label.font is None:
        return []
    from guardrail.marking.label import font_problem

    problem = font_problem(label.font)
    return [(["marking", "label", "font"], problem)] if problem else []


def with_options(config: GuardConfig, options: dict[str, Any], where: str = "Guard()") -> GuardConfig:
    """The settings with these fields replaced (a section as a model or a dict), validated like the file."""
    from pydantic import ValidationError

    if not options:
        return config
    try:
        return GuardConfig.model_validate({**config.model_dump(), **_plain(options)})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc'])}: "
            + ("unknown option" if error["type"] == "extra_forbidden" else error["msg"])
            for error in exc.errors()
        )
        raise ConfigError(f"{where}: {problems}") from None


def _plain(options: dict[str, Any]) -> dict[str, Any]:
    return {
        k: v.model_dump() if isinstance(v, BaseModel) else str(v) if isinstance(v, Path) else v
        for k, v in options.items()
    }


def load_config(path: str | Path) -> GuardConfig:
    """Load guardrail.yaml; errors name file, line, column and field."""
    file = str(path)
    data = read_yaml(read_text_file(path), file)
    if isinstance(data, dict) and "base_dir" in data:
        return validate(GuardConfig, data, file, [(["base_dir"], "set by guardrail, not in the file")])
    config = validate(GuardConfig, data, file)
    return config.model_copy(update={"base_dir": str(Path(path).resolve().parent)})


CONFIG_TEMPLATE = """\
# guardrail configuration. Relative paths are relative to this file.
policy: policies/default.yaml
# A SQLite file (embedded default) or a URL, e.g. postgresql+psycopg://user@host/db
database: guardrail.db
# raise: a denied call raises guardrail.PolicyViolation; return: it returns a result with no images
on_deny: raise
# auto: bring the audit schema up to date at start; check: refuse to start unless it is
migrate: auto
# SQLite only. outcome: each call's outcome event is fsynced before images are returned (the request
# event before it survives a crash and is made power-safe by that fsync); full: fsync every event.
durability: outcome
privacy:
  # Key for the HMACs that stand in for prompts in the audit log. Keep it secret; back it up.
  hmac_key_file: .guardrail/hmac.key
audit:
  # Ed25519 key signing checkpoints of the audit hash chain; verify with its .pub (keep a copy elsewhere).
  checkpoint_key_file: .guardrail/audit-checkpoint.key
  checkpoint_every: 1000        # events
  checkpoint_interval_s: 60
  retention_days: null          # `guardrail audit purge` erases personal data older than this
"""
