"""Guard (configured once) and GuardedPipeline (the drop-in wrapper). Orchestration only: the Guard
declares the stages of a call (`Guard.pipeline`) and hands each call to their loop.
"""

from __future__ import annotations

import functools
import logging
import math
import os
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from guardrail.adapters import CallAdapter, DiffusersAdapter, adapter_for
from guardrail.audit.checkpoints import CheckpointSigner
from guardrail.audit.events import new_id, policy_event
from guardrail.audit.query import CallSummary, list_calls
from guardrail.audit.quota import QuotaLedger
from guardrail.audit.store import AuditStore, database_url
from guardrail.classify.loader import ClassifierSet
from guardrail.config import Capabilities, GuardConfig, load_config, policy_gaps, with_options
from guardrail.errors import ConfigError, GuardrailError
from guardrail.pipeline import Caller, CallPipeline, CallState, Checks, Evidence, decide
from guardrail.pipeline.attach import Attach
from guardrail.pipeline.audit import AuditOutcome, AuditRequest
from guardrail.pipeline.classify import ClassifyOutputs
from guardrail.pipeline.decide import Decide
from guardrail.pipeline.generate import ApplyDecision, Generate
from guardrail.pipeline.inputs import CheckInputs
from guardrail.pipeline.label import LabelOutputs
from guardrail.pipeline.mark import MarkOutputs
from guardrail.pipeline.outputs import FingerprintOutputs, HashOutputs, ScreenOutputs
from guardrail.pipeline.read import ReadCall
from guardrail.pipeline.review import HoldForReview
from guardrail.pipeline.sign import Sign
from guardrail.policy.decision import Decision
from guardrail.policy.engine import PolicyEngine
from guardrail.policy.load import load_policy
from guardrail.policy.reload import PolicySource
from guardrail.policy.schema import Policy
from guardrail.privacy import HmacKey, PromptPrivacy
from guardrail.provenance.signing import ImageSigner
from guardrail.request import GenerationRequest, SignedImage
from guardrail.review.held import HeldImages
from guardrail.review.queue import ReviewQueue
from guardrail.screening.embeddings import ImageEmbedder, embedder_from_config
from guardrail.screening.refsets import ReferenceSet
from guardrail.screening.screen import check_embeddings

log = logging.getLogger("guardrail")


class Guard:
    """Holds the compiled policy, the audit store and the declared stages of a call; thread-safe.

    Its configuration is one GuardConfig (what guardrail.yaml loads into): pass one, or any of its
    fields as keyword arguments (`database=`, `on_deny=`, `audit=AuditConfig(...)`), which replace
    the settings' own. The parts a file names by path can also be given as objects: `policy` (a
    Policy or a path), `shadow_policy`, `hmac_key`, `signer`, `reference_sets`, `embedder`,
    `checkpoint_signer`, `classifiers` (name -> a classifier, or a function of images returning
    per image {label: score}).

    Construction does all the checking (policy valid and enforceable here, key present, database
    reachable and at the current schema), so a misconfigured Guard fails at start, never at its
    first call.
    """

    def __init__(
        self,
        settings: GuardConfig | None = None,
        *,
        policy: Policy | str | Path | None = None,
        shadow_policy: Policy | str | Path | None = None,
        hmac_key: HmacKey | str | Path | None = None,
        signer: ImageSigner | None = None,
        reference_sets: Mapping[str, ReferenceSet | str | Path] | None = None,
        embedder: ImageEmbedder | None = None,
        checkpoint_signer: CheckpointSigner | None = None,
        classifiers: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> None:
        if settings is None and policy is None:
            raise ConfigError("Guard() needs a policy: pass policy= (a Policy or a YAML path) or a GuardConfig")
        config = settings or GuardConfig()
        for field, value in (("policy", policy), ("shadow_policy", shadow_policy)):
            if isinstance(value, str | Path):
                options[field] = str(value)
        if isinstance(hmac_key, str | Path):
            options["privacy"] = {**config.privacy.model_dump(), "hmac_key_file": str(hmac_key)}
        paths = {name: str(v) for name, v in (reference_sets or {}).items() if not isinstance(v, ReferenceSet)}
        if paths:
            screening = config.screening.model_dump()
            options["screening"] = {**screening, "reference_sets": {**screening["reference_sets"], **paths}}
        self.settings = config = with_options(config, options)

        key_file = config.privacy.hmac_key_file
        key = hmac_key if isinstance(hmac_key, HmacKey) else None
        self._key = key or (HmacKey.from_file(config.path(key_file)) if key_file else HmacKey.from_env())
        anchors = config.trust_anchors_pem()
        self.signer = signer if signer is not None else config.signer(anchors)
        self.reference_sets = {
            name: ReferenceSet.open(config.path(folder)) for name, folder in config.screening.reference_sets.items()
        }
        self.reference_sets.update({n: r for n, r in (reference_sets or {}).items() if isinstance(r, ReferenceSet)})
        self.embedder = (
            embedder if embedder is not None else embedder_from_config(config.screening.embedding, config.path)
        )
        check_embeddings(self.reference_sets, self.embedder)
        self.classifiers = ClassifierSet(config.classifiers, classifiers, config.path)
        """The content classifiers the policy's classifier rules name, loaded on first use."""

        self._source: PolicySource | None = None
        if isinstance(policy, Policy):
            self._engine = PolicyEngine(policy)
        else:
            self._source = PolicySource(
                config.path(config.policy),
                environment=config.environment,
                interval_s=config.reload_interval_s if config.reload else math.inf,
                accept=self._check_policy,
                on_change=self._policy_changed,
            )
            self._engine = self._source.engine
        self._check_policy(self._engine)
        self.shadow: PolicyEngine | None = None
        if isinstance(shadow_policy, Policy):
            self.shadow = PolicyEngine(shadow_policy)
        elif config.shadow_policy is not None:
            self.shadow = PolicyEngine(load_policy(config.path(config.shadow_policy), environment=config.environment))
        if self.shadow is not None:  # it decides over the same checks on every call: it must be able to
            self._check_policy(self.shadow)

        audit = config.audit
        if checkpoint_signer is None and audit.checkpoint_key_file:
            checkpoint_signer = CheckpointSigner.from_file(config.path(audit.checkpoint_key_file))
        self.store = AuditStore(
            database_url(config.database, config.base_dir),
            migrate=config.migrate,
            durability=config.durability,
            checkpoint_signer=checkpoint_signer,
            checkpoint_every=audit.checkpoint_every,
            checkpoint_interval_s=audit.checkpoint_interval_s,
        )
        self._workers = ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="guardrail")
        """Runs the images of a call concurrently (screening, signing), shared by every call."""
        each = functools.partial(_each, self._workers)
        self.held = HeldImages(config.path(config.review.folder))
        self.reviews = ReviewQueue(self.store, self.held, self.signer)
        """The calls held for review: list, approve, reject, release (`guardrail review` on the CLI)."""
        ledger = QuotaLedger(self.store.crash_safe_engine)
        self.checks = Checks(self.reference_sets, self.embedder, ledger, anchors, each, self.classifiers)
        self.pipeline = CallPipeline(
            stages=[
                ReadCall(self._privacy, new_id),
                AuditRequest(self.store),
                CheckInputs(),
                Decide(self.checks, self.shadow),
                ApplyDecision(),
                Generate(config.path(config.preview_decoder) if config.preview_decoder else None),
                HashOutputs(),
                FingerprintOutputs(each),
                ScreenOutputs(self.shadow),
                ClassifyOutputs(each, self.shadow),
                LabelOutputs(each),
                MarkOutputs(each),
                HoldForReview(self.held, self.signer, each),
                Sign(self.signer, each),
            ],
            finish=[AuditOutcome(self.store, self.shadow), Attach(config.on_deny, config.review.on_review)],
        )
        """The stages of every call, in order: the flow of one call as the code declares it."""

    @property
    def capabilities(self) -> Capabilities:
        """What this Guard offers a policy: its reference sets, embedding model, signer and HMAC key."""
        return Capabilities(
            reference_sets=frozenset(self.reference_sets),
            embedding=self.embedder is not None,
            signer=self.signer is not None,
            hmac_key=self._key is not None,
            classifiers=self.classifiers.names,
        )

    def _check_policy(self, engine: PolicyEngine) -> None:
        """Refuse a policy this Guard cannot honour (at start, and for every reload)."""
        gaps = policy_gaps(engine.policy, self.capabilities)
        if gaps:
            raise ConfigError(f"policy {engine.policy.name!r}: " + "; ".join(message for _path, message in gaps))

    def _policy_changed(self, in_force: PolicyEngine, error: GuardrailError | None) -> None:
        """Audit every reload, applied or refused; a refused edit leaves the last good policy in force."""
        if error is not None:
            log.warning("policy edit refused; version %s stays in force: %s", in_force.version[:12], error)
        self.store.write(policy_event(in_force.policy.name, in_force.version, applied=error is None, error=error))

    def _privacy(self, mode: str) -> PromptPrivacy:
        return PromptPrivacy(mode, self._key)

    @property
    def engine(self) -> PolicyEngine:
        """The compiled policy in force now (reloaded first, when its files changed)."""
        return self._source.engine if self._source is not None else self._engine

    @property
    def policy(self) -> Policy:
        return self.engine.policy

    @property
    def privacy(self) -> PromptPrivacy:
        return self._privacy(self.policy.privacy.prompts)

    @classmethod
    def from_config(cls, path: str | Path = "guardrail.yaml") -> Guard:
        """A Guard from guardrail.yaml; relative paths in it resolve against the file's folder."""
        return cls(load_config(path))

    @classmethod
    def from_settings(cls, config: GuardConfig) -> Guard:
        """A Guard from settings already loaded (the same as `Guard(config)`)."""
        return cls(config)

    @property
    def policy_version(self) -> str:
        return self.engine.version

    def evaluate(self, request: GenerationRequest) -> Decision:
        """The decision the Guard would reach for a request (rules, concept rules, input screening,
        quotas), without generating, charging a quota or writing anything."""
        return decide(self.engine, request, Evidence(request, self.checks), charge=False).decision

    def wrap(self, target: Any, *, model: str | None = None) -> GuardedPipeline:
        """Guard a diffusers pipeline or any callable returning images. `model` names it in the audit log."""
        return GuardedPipeline(self, adapter_for(target, model=model))

    def guarded(self, fn: Callable[..., Any] | None = None, *, model: str | None = None) -> Any:
        """Decorator form of wrap(): `@guard.guarded` or `@guard.guarded(model="my-gan")`."""
        if fn is None:
            return functools.partial(self.guarded, model=model)
        wrapper = self.wrap(fn, model=model)
        functools.update_wrapper(wrapper, fn)
        return wrapper

    def review_result(self, audit_id: str) -> list[SignedImage]:
        """The images of a call held for review, once approved (signed with the review recorded when
        this Guard signs). Raises ReviewError while it is pending or when it was rejected."""
        return self.reviews.images(audit_id)

    def recent_calls(self, limit: int = 50, *, user: str | None = None) -> list[CallSummary]:
        """The latest calls in the audit log, newest first. Reads only."""
        return list_calls(self.store.engine, limit=limit, user=user)

    def close(self) -> None:
        self._workers.shutdown(wait=True)
        self.store.close()

    def __enter__(self) -> Guard:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def run(
        self,
        adapter: CallAdapter,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        user: str | None,
        roles: Iterable[str],
        tenant: str | None = None,
    ) -> Any:
        """One guarded call through the declared stages. Raises PolicyViolation on deny (unless on_deny is
        "return"), AuditWriteError when the log cannot be written, SigningError when required signing
        fails, and the target's own exception when generation fails."""
        caller = Caller(user, tuple(roles), tenant)
        return self.pipeline.run(CallState(adapter, args, kwargs, caller, self.engine))


def _each(workers: ThreadPoolExecutor, fn: Callable[[Any], Any], items: Iterable[Any]) -> list[Any]:
    """fn over the items, concurrently on the workers when there are several (a hop to a worker costs
    about 0.35 ms here: one image is done on the calling thread)."""
    items = list(items)
    return list(workers.map(fn, items)) if len(items) > 1 else [fn(item) for item in items]


class GuardedPipeline:
    """A drop-in for the wrapped pipeline or callable: same call signature plus `user=` and `roles=`,
    every other attribute passed through. Methods that return the pipeline itself (`.to()`) return
    the guarded wrapper, so chaining keeps the guard on."""

    _own = frozenset(
        {
            "_guard",
            "_adapter",
            "__wrapped__",
            "__name__",
            "__qualname__",
            "__doc__",
            "__module__",
            "__dict__",
            "__type_params__",
        }
    )

    def __init__(self, guard: Guard, adapter: CallAdapter) -> None:
        object.__setattr__(self, "_guard", guard)
        object.__setattr__(self, "_adapter", adapter)

    @property
    def wrapped(self) -> Any:
        """The pipeline or callable being guarded."""
        return self._adapter.target

    @property
    def guard(self) -> Guard:
        return self._guard

    def __call__(
        self, *args: Any, user: str | None = None, roles: Iterable[str] = (), tenant: str | None = None, **kwargs: Any
    ) -> Any:
        return self._guard.run(self._adapter, args, kwargs, user=user, roles=roles, tenant=tenant)

    def load_lora_weights(self, source: Any, adapter_name: str | None = None, **kwargs: Any) -> None:
        """Load a LoRA through the pipeline, recording the SHA-256 of its file for policy hash lists."""
        if not isinstance(self._adapter, DiffusersAdapter):
            raise AttributeError(f"{self._adapter.target!r} is not a diffusers pipeline; it has no load_lora_weights")
        self._adapter.load_lora_weights(source, adapter_name=adapter_name, **kwargs)

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._adapter.target, name)
        if callable(value) and not isinstance(value, type) and hasattr(value, "__self__"):
            return _returns_wrapper(value, self)
        return value

    def __setattr__(self, name: str, value: Any) -> None:
        if name in self._own:
            object.__setattr__(self, name, value)
        else:
            setattr(self._adapter.target, name, value)

    def __repr__(self) -> str:
        return f"GuardedPipeline({self._adapter.target!r}, policy={self._guard.policy.name!r})"


def _returns_wrapper(method: Callable[..., Any], wrapper: GuardedPipeline) -> Callable[..., Any]:
    @functools.wraps(method)
    def call(*args: Any, **kwargs: Any) -> Any:
        result = method(*args, **kwargs)
        return wrapper if result is wrapper.wrapped else result

    return call
