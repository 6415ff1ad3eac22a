"""The policy format: strict pydantic models, so every unknown key or wrong type is an error.

A policy is an ordered list of rules. A rule has an id, an effect, an optional scope (`when`:
users and roles) and at most one condition; a rule without a condition fires for every request
in its scope (useful for role grants when `default: deny`).
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from guardrail.policy.regex import compile_linear

Effect = Literal["allow", "deny", "modify", "flag", "review"]
PrivacyMode = Literal["hmac", "plaintext", "redacted"]
TextField = Literal["prompt", "negative_prompt"]


def _valid_regex(pattern: str) -> str:
    compile_linear(pattern)  # raises ValueError: located by the loader at the pattern's line
    return pattern


def _valid_sha256(value: str) -> str:
    if not re.fullmatch(r"[0-9a-f]{64}", value):
        raise ValueError("expected 64 lower-case hex digits (a SHA-256)")
    return value


Regex = Annotated[str, AfterValidator(_valid_regex)]
Sha256 = Annotated[str, AfterValidator(_valid_sha256)]
RuleId = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", max_length=128)]


class _Strict(BaseModel):
    # NaN compares false with every bound (a limit of .nan limits nothing) and infinities are no limit:
    # refused in every number of a policy
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Scope(_Strict):
    """Who a rule applies to. Empty lists mean everyone."""

    users: list[str] = []
    roles: list[str] = []
    except_users: list[str] = []
    except_roles: list[str] = []

    def applies(self, user: str | None, roles: tuple[str, ...]) -> bool:
        if self.users and user not in self.users:
            return False
        if self.roles and not set(roles) & set(self.roles):
            return False
        if user is not None and user in self.except_users:
            return False
        return not set(roles) & set(self.except_roles)


MatchMode = Literal["inflected", "exact"]


class TermSpec(_Strict):
    """A term with its own matching: `{term: ass, match: exact}`."""

    term: str = Field(min_length=1)
    match: MatchMode = "inflected"


class TermList(_Strict):
    """A named list of terms, with the exceptions and matching that hold wherever it is used."""

    terms: list[str | TermSpec]
    unless: list[str] = []
    """Phrases in which a match of these terms does not fire (normalised like the terms)."""
    match: MatchMode = "inflected"


class TextCondition(_Strict):
    """Terms (whole words, after normalisation) and regexes matched against prompt text."""

    terms: list[str | TermSpec] = []
    term_lists: list[str] = []
    """Names of entries in the policy's `term_lists`."""
    match: MatchMode = "inflected"
    """inflected: a term also matches its regular plural (-s, -es, -ies) and -ing/-ings forms;
    exact: only as written. Irregular forms are the author's to list."""
    unless: list[str] = []
    """Phrases in which a term match does not fire ('gore-tex', 'al gore' for 'gore'); the suppressed
    match is shown by `policy explain` and can be asserted by policy tests."""
    regex: list[Regex] = []
    fields: list[TextField] = ["prompt"]


class Range(_Strict):
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Range:
        if self.min is None and self.max is None:
            raise ValueError("give min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        return self


class Limits(_Strict):
    """Parameter bounds. With effect `modify` values are clamped; with `deny` or `flag` they fire."""

    width: Range | None = None
    height: Range | None = None
    pixels: Range | None = None
    steps: Range | None = None
    guidance: Range | None = None
    images: Range | None = None
    """Images per call: prompts x images per prompt."""


class NameList(_Strict):
    """Allow and deny lists by name (shell-style wildcards) and by weight-file SHA-256."""

    allow: list[str] = []
    deny: list[str] = []
    allow_sha256: list[Sha256] = []
    deny_sha256: list[Sha256] = []


class Rule(_Strict):
    id: RuleId
    description: str = ""
    effect: Effect
    message: str = ""
    when: Scope = Scope()
    prompt: TextCondition | None = None
    require_negative: list[str] | None = None
    """Terms the negative prompt must contain; missing ones are appended (effect must be modify)."""
    limits: Limits | None = None
    models: NameList | None = None
    adapters: NameList | None = None

    @model_validator(mode="after")
    def _one_condition(self) -> Rule:
        present = [n for n in ("prompt", "require_negative", "limits", "models", "adapters") if getattr(self, n)]
        if len(present) > 1:
            raise ValueError(f"a rule has at most one condition, this one has {', '.join(present)}")
        if self.require_negative is not None and self.effect != "modify":
            raise ValueError("require_negative appends terms, so its effect must be 'modify'")
        if self.effect == "modify" and not (self.limits or self.require_negative):
            raise ValueError("effect 'modify' needs something to modify: limits or require_negative")
        if self.effect == "allow" and present:
            raise ValueError("an 'allow' rule grants access to its scope; it takes no condition")
        return self


class Privacy(_Strict):
    prompts: PrivacyMode = "hmac"
    """How prompts are stored in the audit log: keyed HMAC-SHA256 (default), plaintext, or redacted."""


_WINDOW = re.compile(r"^(\d+)(s|m|h|d)$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _valid_window(value: str) -> str:
    if not _WINDOW.match(value) or int(value[:-1]) == 0:
        raise ValueError("expected a window like 30m, 1h, 1d or 7d")
    return value


class Quota(_Strict):
    """At most `images` images per user, role or tenant in each fixed window (e.g. each hour)."""

    id: RuleId
    per: Literal["user", "role", "tenant"]
    window: Annotated[str, AfterValidator(_valid_window)]
    images: int = Field(ge=0)
    when: Scope = Scope()
    message: str = ""

    @property
    def window_seconds(self) -> int:
        match = _WINDOW.match(self.window)
        assert match is not None
        return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


class ScreeningSet(_Strict):
    """How one protected reference set is used: an image that matches a reference by any method is
    blocked (image withheld), flagged (returned, marked) or sent to review (held until approved)."""

    max_distance: int | None = Field(default=10, ge=0, le=32)
    """pHash: at most this many of 64 bits differ (from the image or its mirror); null turns it off."""
    min_inliers: int | None = Field(default=10, ge=4)
    """Keypoints: at least this many keypoints agree under one rotation/scale/shift; null turns it off."""
    min_similarity: float | None = Field(default=0.92, ge=-1, le=1)
    """CLIP: cosine similarity of image embeddings (sets built with a model only); null turns it off."""
    action: Literal["block", "flag", "review"] = "block"


class ConceptRule(_Strict):
    """Deny or flag prompts whose meaning is close to any of `concepts`: the cosine similarity of the
    CLIP text embeddings of prompt and concept is at least `min_similarity`. Needs the embedding model
    configured in guardrail.yaml (a Guard without one refuses such a policy)."""

    id: RuleId
    concepts: list[Annotated[str, Field(min_length=1)]] = Field(min_length=1)
    min_similarity: float = Field(ge=-1, le=1)
    effect: Literal["deny", "flag", "review"] = "deny"
    message: str = ""


class ScreeningPolicy(_Strict):
    sets: dict[str, ScreeningSet] = {}
    """Reference set name (configured in guardrail.yaml) -> how it is used."""
    concepts: list[ConceptRule] = []
    """Prompt rules by meaning, checked before generation."""
    inputs: bool = True
    """Screen input images (img2img, inpaint, ControlNet) before generation too."""


class InputProvenance(_Strict):
    invalid: Literal["deny", "flag", "allow"] = "flag"
    """An input image whose C2PA manifest fails validation (a tampered parent): deny the call, flag it,
    or allow it. Every input's validation result is audited either way."""


class ProvenancePolicy(_Strict):
    inputs: InputProvenance = InputProvenance()
    required: bool = False
    """Every returned image must carry a C2PA signature: a Guard without a signer refuses to start,
    and a signing failure withholds the images. When false, a failure is audited and the images are
    returned unsigned."""


class VisibleLabel(_Strict):
    """An explicit label drawn onto every returned image (China's GB 45438-2025 asks for one), before
    the watermark and the signature, and recorded in the manifest's governance assertion."""

    text: str = Field(min_length=1, max_length=200)
    position: Literal["bottom-right", "bottom-left", "top-right", "top-left"] = "bottom-right"
    min_size_pct: float = Field(default=5.0, gt=0, le=50)
    """The text's height, at least this share of the image's shorter side."""
    font: str | None = None
    """A TrueType / OpenType font file (for CJK text, one that has its glyphs); Pillow's own font when unset."""


class MarkingPolicy(_Strict):
    label: VisibleLabel | None = None
    watermark: Literal["required", "optional", "off"] = "optional"
    """An imperceptible watermark carrying a token logged with the call, so that a copy stripped of its
    manifest still leads back to it (guardrail trace). optional: every image large enough (128 px and
    more on its shorter side, 8-bit) is marked, and any other is returned unmarked with the reason
    audited; required: an image that cannot be marked, or whose mark does not read back, withholds the
    call's images; off: no watermark."""


class ClassifierRule(_Strict):
    """What a content classifier's scores decide: an image in which any of `labels` scores at least its
    threshold is blocked (the call's images withheld), flagged (returned, marked), sent to review
    (held) or returned with the detected regions blurred (detectors only: their boxes). `when` scopes
    the rule to users and roles like any rule, so a role can have its own thresholds."""

    model: str = Field(min_length=1)
    """A classifier configured under `classifiers` in guardrail.yaml (nudenet is built in with its extra)."""
    labels: dict[Annotated[str, Field(min_length=1)], Annotated[float, Field(ge=0, le=1)]] = Field(min_length=1)
    """Label -> the score at and above which the rule fires."""
    action: Literal["block", "flag", "review", "blur"] = "flag"
    when: Scope = Scope()
    inputs: bool = False
    """Classify input images too (img2img, inpaint, ControlNet), before generation."""
    message: str = ""

    @model_validator(mode="after")
    def _blur_outputs(self) -> ClassifierRule:
        if self.action == "blur" and self.inputs:
            raise ValueError("blur changes returned images; an input cannot be blurred (use block, flag or review)")
        return self


class PreviewPolicy(_Strict):
    """Checks on a cheap preview of a diffusers pipeline's latents during generation: a block found
    there stops the pipeline at that step (audited with it) instead of after the last one."""

    at: list[Annotated[float, Field(gt=0, lt=1)]] = Field(min_length=1, max_length=10)
    """When to look, as fractions of the steps (0.3: after 30 % of them)."""
    classifiers: bool = True
    """Run the classifier rules whose action is block on the preview."""
    screening: bool = True
    """Match the preview's pHash against the reference sets whose action is block."""


class ReviewPolicy(_Strict):
    """What a call sent to review (a rule, concept rule or screening set whose effect or action is
    `review`) needs before its images are released."""

    approvals: int = Field(default=1, ge=1, le=10)
    """Distinct reviewers who must approve ("four eyes": 2)."""
    self_approval: bool = False
    """Whether the user who made the call may approve it."""
    expire_after: Annotated[str, AfterValidator(_valid_window)] = "7d"
    """Held images still pending after this long are rejected automatically (audited) and deleted."""

    @property
    def expire_after_seconds(self) -> int:
        match = _WINDOW.match(self.expire_after)
        assert match is not None
        return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


class Policy(_Strict):
    """A whole policy file."""

    name: str = Field(min_length=1, max_length=200)
    description: str = ""
    extends: str | None = None
    """A policy file (relative to this one) whose rules and settings this one builds on."""
    environments: dict[str, dict[str, Any]] = {}
    """Named sets of overrides (e.g. staging, prod), applied on top when that environment is chosen."""
    default: Literal["allow", "deny"] = "allow"
    """The effect when no allow or deny rule fires."""
    prompt_embeds: Literal["deny", "flag", "allow"] = "deny"
    """What to do with calls that pass prompt embeddings without text (text that cannot be checked)."""
    privacy: Privacy = Privacy()
    provenance: ProvenancePolicy = ProvenancePolicy()
    marking: MarkingPolicy = MarkingPolicy()
    screening: ScreeningPolicy = ScreeningPolicy()
    classifiers: dict[RuleId, ClassifierRule] = {}
    """Content classifier rules by name (rule id `classifier.<name>`)."""
    preview: PreviewPolicy | None = None
    """Early abort: block checks on latent previews during generation (diffusers pipelines)."""
    review: ReviewPolicy = ReviewPolicy()
    term_lists: dict[str, list[str | TermSpec] | TermList] = {}
    rules: list[Rule] = []
    quotas: list[Quota] = []

    @property
    def version(self) -> str:
        """The content hash: SHA-256 of the canonical JSON of the parsed policy."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


def json_schema() -> dict[str, object]:
    """The JSON Schema of the policy format, for editors and validators."""
    return Policy.model_json_schema()
