"""What one call's checks found: each expensive check made at most once per call and settings.

The active and the shadow decision share every result whose settings agree, so a shadow identical to
the active policy is compared like with like, and a quota is never charged twice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar, cast

from guardrail.errors import ConfigError
from guardrail.policy.decision import FiredRule
from guardrail.policy.quota import Overdrawn, QuotaCounter, QuotaUse
from guardrail.request import GenerationRequest

if TYPE_CHECKING:
    from guardrail.classify.base import Detection
    from guardrail.classify.loader import ClassifierSet
    from guardrail.screening.concepts import ConceptScreen
    from guardrail.screening.embeddings import ImageEmbedder
    from guardrail.screening.refsets import ReferenceSet
    from guardrail.screening.screen import Match


R = TypeVar("R")


@dataclass(frozen=True)
class Checks:
    """What decisions consult beyond a policy's own rules, configured once: the reference sets, the
    embedding model (CLIP tier and concept rules) and the quota counter (None: quotas unchecked)."""

    reference_sets: Mapping[str, ReferenceSet] = field(default_factory=dict)
    embedder: ImageEmbedder | None = None
    quotas: QuotaCounter | None = None
    trust_anchors: str | None = None
    """PEM of the roots input images' C2PA manifests are validated against."""
    each: Callable[..., Iterable[Any]] = map
    """How per-image work is mapped: the Guard's worker pool runs the images of a call concurrently."""
    classifiers: ClassifierSet | None = None
    """The content classifiers the policy's classifier rules name."""
    concepts: ConceptScreen | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        if self.embedder is not None:
            from guardrail.screening.concepts import ConceptScreen

            object.__setattr__(self, "concepts", ConceptScreen(self.embedder))


class Evidence:
    """What one call's checks found, each computed at most once per call and settings. Not shared
    between calls; a quota charge is remembered so that a second decision over the same quotas (the
    shadow's) reads the first one's outcome instead of counting again."""

    def __init__(self, request: GenerationRequest, checks: Checks) -> None:
        self.request = request
        self.checks = checks
        self._memo: list[tuple[tuple[Any, ...], Any]] = []

    def _once(self, key: tuple[Any, ...], compute: Callable[[], R]) -> R:
        for known, value in self._memo:
            if known == key:
                return cast(R, value)  # stored under this key by this method
        value = compute()
        self._memo.append((key, value))
        return value

    def concepts(self, rules: Sequence[Any]) -> list[FiredRule]:
        """Concept rules the prompts come close to. Raises ConfigError without an embedding model."""
        concepts = self.checks.concepts
        if concepts is None:
            raise ConfigError(
                "the policy has prompt concept rules, which need an embedding model: configure "
                "screening.embedding (model and checkpoint) in guardrail.yaml, or pass embedder= to Guard"
            )
        return self._once(("concepts", list(rules)), lambda: concepts.fired(self.request.prompts, list(rules)))

    def screen(
        self, role: str, images: Sequence[Any], sets: Mapping[str, Any], hashes: Sequence[Any] | None = None
    ) -> list[list[Match]]:
        """Each image's matches against the sets (name -> ScreeningSet); `role` is input or output;
        `hashes`: the images' fingerprints, when already computed."""
        from guardrail.screening.screen import screen

        def run() -> list[list[Match]]:
            refsets = dict(self.checks.reference_sets)
            known = list(hashes) if hashes else None
            return screen(list(images), dict(sets), refsets, self.checks.embedder, each=self.checks.each, hashes=known)

        return self._once(("screen", role, dict(sets)), run)

    def classify(self, role: str, images: Sequence[Any], model: str) -> tuple[str, list[list[Detection]]]:
        """(the model's identity, each image's detections), once per call, role and model. Raises
        ConfigError when the model is not configured."""
        classifiers = self.checks.classifiers
        if classifiers is None:
            raise ConfigError(
                f"the policy has classifier rules, but no classifiers are configured (model {model!r}): add them "
                "under classifiers in guardrail.yaml or pass classifiers= to Guard"
            )

        def run() -> tuple[str, list[list[Detection]]]:
            classifier = classifiers.get(model)
            return classifier.identity, classifier.classify(list(images))

        return self._once(("classify", role, model), run)

    def input_provenance(self) -> list[dict[str, Any]]:
        """Each input image opened from a file that carries a C2PA manifest (guardrail.open_image keeps
        the file's bytes): its validation with the configured trust anchors."""
        from guardrail.images import opened_from
        from guardrail.provenance.verify import NO_MANIFEST, verify_bytes

        def run() -> list[dict[str, Any]]:
            found = []
            for index, item in enumerate(self.request.input_images):
                source = opened_from(item.image)
                if source is None:
                    continue
                result = verify_bytes(source[0], trust_anchors=self.checks.trust_anchors)
                if result.state != NO_MANIFEST:
                    found.append(
                        {
                            "input": index,
                            "role": item.role,
                            "state": result.state,
                            "valid": result.ok(require_trusted=False),
                            "failures": result.failures,
                            "manifest": result.manifest_label,
                        }
                    )
            return found

        return self._once(("input-provenance",), run)

    def charge(self, uses: Sequence[QuotaUse], images: int, *, commit: bool = True) -> list[int] | Overdrawn:
        """The quota counter, remembered: the same counters and images are charged at most once."""
        counter = self.checks.quotas
        assert counter is not None
        return self._once(("quota", list(uses), images), lambda: counter.charge(uses, images, commit=commit))
