"""Guard (configured once) and GuardedPipeline (the drop-in wrapper). Orchestration only.

The flow of one call, one direction:
read the call -> audit the request -> decide -> (deny: audit, raise) -> apply changes ->
generate -> hash outputs -> sign (C2PA, last: nothing touches the bytes after) -> audit the
outcome -> attach governance.
"""

from __future__ import annotations

import functools
import logging
import math
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Literal

from guardrail.adapters import CallAdapter, DiffusersAdapter, adapter_for
from guardrail.audit.checkpoints import CheckpointSigner
from guardrail.audit.events import CallContext, new_id, outcome_event, policy_event, request_event
from guardrail.audit.privacy import HmacKey, PromptPrivacy
from guardrail.audit.query import CallSummary, list_calls
from guardrail.audit.store import AuditStore, Durability, Migrate, database_url
from guardrail.config import GuardConfig, load_config
from guardrail.errors import ConfigError, GuardrailError, PolicyViolation, SigningError
from guardrail.images import image_sha256
from guardrail.policy.decision import Decision
from guardrail.policy.engine import PolicyEngine, shadow_notes
from guardrail.policy.load import load_policy
from guardrail.policy.quota import QuotaLedger, charge_quotas
from guardrail.policy.reload import PolicySource
from guardrail.policy.schema import Policy
from guardrail.provenance.signing import ImageSigner, SignedImage, sign_call
from guardrail.request import GenerationRequest, Governance, GuardedResult
from guardrail.screening.concepts import ConceptScreen
from guardrail.screening.embeddings import ImageEmbedder, embedder_from_config
from guardrail.screening.refsets import ReferenceSet
from guardrail.screening.screen import Match, apply_matches, check_embeddings, screen, summary

OnDeny = Literal["raise", "return"]
log = logging.getLogger("guardrail")


class Guard:
    """Holds the compiled policy, the audit store and the prompt-privacy settings; thread-safe.

    Construction does all the checking (policy valid, key present, database reachable and at the
    current schema), so a misconfigured Guard fails at start, never at its first call.
    """

    def __init__(
        self,
        *,
        policy: Policy | str | Path,
        database: str = "guardrail.db",
        on_deny: OnDeny = "raise",
        hmac_key: HmacKey | str | Path | None = None,
        migrate: Migrate = "auto",
        durability: Durability = "outcome",
        signer: ImageSigner | None = None,
        environment: str | None = None,
        reload: bool = False,
        reload_interval_s: float = 1.0,
        shadow_policy: Policy | str | Path | None = None,
        checkpoint_signer: CheckpointSigner | None = None,
        checkpoint_every: int = 1000,
        checkpoint_interval_s: float = 60.0,
        reference_sets: dict[str, ReferenceSet | str | Path] | None = None,
        embedder: ImageEmbedder | None = None,
        base_dir: str | Path | None = None,
    ) -> None:
        self.on_deny = on_deny
        self.signer = signer
        key = hmac_key if isinstance(hmac_key, HmacKey) or hmac_key is None else HmacKey.from_file(hmac_key)
        self._key = key or HmacKey.from_env()
        self.reference_sets = {
            name: refset if isinstance(refset, ReferenceSet) else ReferenceSet.open(refset)
            for name, refset in (reference_sets or {}).items()
        }
        self.embedder = embedder
        check_embeddings(self.reference_sets, embedder)
        self._concepts = ConceptScreen(embedder) if embedder is not None else None
        self._source: PolicySource | None = None
        if isinstance(policy, Policy):
            self._engine = PolicyEngine(policy)
        else:
            self._source = PolicySource(
                policy,
                environment=environment,
                interval_s=reload_interval_s if reload else math.inf,
                accept=self._check_policy,
                on_change=self._policy_changed,
            )
            self._engine = self._source.engine
        self._check_policy(self._engine)
        self.shadow: PolicyEngine | None = None
        if shadow_policy is not None:
            shadow = (
                shadow_policy
                if isinstance(shadow_policy, Policy)
                else load_policy(shadow_policy, environment=environment)
            )
            self.shadow = PolicyEngine(shadow)
        self.store = AuditStore(
            database_url(database, base_dir),
            migrate=migrate,
            durability=durability,
            checkpoint_signer=checkpoint_signer,
            checkpoint_every=checkpoint_every,
            checkpoint_interval_s=checkpoint_interval_s,
        )
        self.quotas = QuotaLedger(self.store.crash_safe_engine)

    def _check_policy(self, engine: PolicyEngine) -> None:
        """Refuse a policy this Guard cannot honour (at start, and for every reload)."""
        policy = engine.policy
        PromptPrivacy(policy.privacy.prompts, self._key)  # raises when HMACs are asked for without a key
        unknown = sorted(set(policy.screening.sets) - set(self.reference_sets))
        if unknown:
            configured = ", ".join(self.reference_sets) or "none"
            raise ConfigError(
                f"policy {policy.name!r} screens against unknown reference set {unknown[0]!r} "
                f"(configured: {configured}); add it under screening.reference_sets in guardrail.yaml"
            )
        if policy.screening.concepts and self._concepts is None:
            raise ConfigError(
                f"policy {policy.name!r} has prompt concept rules but no embedding model is configured: add "
                "screening.embedding (model and checkpoint) to guardrail.yaml or pass embedder= to Guard"
            )
        if policy.provenance.required and self.signer is None:
            raise ConfigError(
                f"policy {policy.name!r} requires signed images (provenance.required) but no signer is "
                "configured: add a `provenance` section to guardrail.yaml or pass signer= to Guard"
            )

    def _policy_changed(self, in_force: PolicyEngine, error: GuardrailError | None) -> None:
        """Audit every reload, applied or refused; a refused edit leaves the last good policy in force."""
        if error is not None:
            log.warning("policy edit refused; version %s stays in force: %s", in_force.version[:12], error)
        self.store.write(policy_event(in_force.policy.name, in_force.version, applied=error is None, error=error))

    @property
    def engine(self) -> PolicyEngine:
        """The compiled policy in force now (reloaded first, when its files changed)."""
        return self._source.engine if self._source is not None else self._engine

    @property
    def policy(self) -> Policy:
        return self.engine.policy

    @property
    def privacy(self) -> PromptPrivacy:
        return PromptPrivacy(self.policy.privacy.prompts, self._key)

    @classmethod
    def from_config(cls, path: str | Path = "guardrail.yaml") -> Guard:
        """A Guard from guardrail.yaml; relative paths in it resolve against the file's folder."""
        return cls.from_settings(load_config(path))

    @classmethod
    def from_settings(cls, config: GuardConfig) -> Guard:
        key_file = config.privacy.hmac_key_file
        signer = None
        if config.provenance is not None:
            p = config.provenance
            signer = ImageSigner.from_files(
                config.path(p.certificate_chain),
                config.path(p.private_key),
                algorithm=p.algorithm,
                timestamp_url=p.timestamp_url,
                output_format=p.format,
                jpeg_quality=p.jpeg_quality,
                thumbnail=p.thumbnail,
            )
        audit = config.audit
        checkpoints = (
            CheckpointSigner.from_file(config.path(audit.checkpoint_key_file)) if audit.checkpoint_key_file else None
        )
        return cls(
            checkpoint_signer=checkpoints,
            checkpoint_every=audit.checkpoint_every,
            checkpoint_interval_s=audit.checkpoint_interval_s,
            reference_sets={name: config.path(folder) for name, folder in config.screening.reference_sets.items()},
            embedder=embedder_from_config(config.screening.embedding, config.path),
            policy=config.path(config.policy),
            environment=config.environment,
            reload=config.reload,
            reload_interval_s=config.reload_interval_s,
            shadow_policy=config.path(config.shadow_policy) if config.shadow_policy else None,
            database=config.database,
            on_deny=config.on_deny,
            hmac_key=config.path(key_file) if key_file else None,
            migrate=config.migrate,
            durability=config.durability,
            signer=signer,
            base_dir=config.base_dir,
        )

    @property
    def policy_version(self) -> str:
        return self.engine.version

    def evaluate(self, request: GenerationRequest) -> Decision:
        """The decision for a request, without generating or writing anything."""
        return self.engine.evaluate(request)

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

    def recent_calls(self, limit: int = 50, *, user: str | None = None) -> list[CallSummary]:
        """The latest calls in the audit log, newest first. Reads only."""
        return list_calls(self.store.engine, limit=limit, user=user)

    def close(self) -> None:
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
        """One guarded call. Raises PolicyViolation on deny (unless on_deny is "return"), AuditWriteError
        when the log cannot be written, SigningError when required signing fails, and the target's own
        exception when generation fails."""
        timings: dict[str, float] = {}
        clock = _Clock(timings)
        engine = self.engine  # one policy for the whole call, even if a reload lands meanwhile
        with clock("read"):
            request = adapter.read(
                args, kwargs, user=user, roles=tuple(roles), tenant=tenant, hash_weights=engine.needs_weight_hashes
            )
        privacy = PromptPrivacy(engine.policy.privacy.prompts, self._key)
        ctx = CallContext(new_id(), request, engine.policy.name, engine.version, privacy)
        with clock("audit_request"):
            self.store.write(request_event(ctx))
        with clock("policy"):
            decision = engine.evaluate(request)
        screening = engine.policy.screening
        if decision.allowed and screening.concepts and self._concepts is not None:
            with clock("concepts"):
                decision = decision.with_fired(self._concepts.fired(request.prompts, screening.concepts))
        inputs = [i.image for i in request.input_images if i.image is not None]
        notes: dict[str, Any] = {}
        if decision.allowed and screening.sets and screening.inputs and inputs:
            with clock("screen_inputs"):
                found = screen(inputs, screening.sets, self.reference_sets, self.embedder)
            decision = apply_matches(decision, found, "input")
            notes["screening"] = {"inputs": summary(found)}
        if decision.allowed and engine.policy.quotas:
            with clock("quota"):
                decision = charge_quotas(self.quotas, engine.policy.quotas, request, decision)
        notes.update(shadow_notes(self.shadow, request, decision))
        if not decision.allowed:
            return self._deny(ctx, decision, [], timings, notes)
        call_args, call_kwargs = adapter.apply(args, kwargs, decision)
        try:
            with clock("generate"):
                output = adapter.target(*call_args, **call_kwargs)
        except BaseException as exc:
            self.store.write(
                outcome_event(ctx, decision=decision, outputs=[], durations_ms=timings, error=exc, notes=notes)
            )
            raise
        images = adapter.output_images(output)
        with clock("hash_outputs"):
            digests = tuple(image_sha256(image) for image in images)
        outputs = [{"sha256": digest} for digest in digests]
        matches: list[list[Match]] = [[] for _ in images]
        if screening.sets:
            with clock("screen_outputs"):
                matches = screen(images, screening.sets, self.reference_sets, self.embedder)
            decision = apply_matches(decision, matches, "output")
            notes["screening"] = {**notes.get("screening", {}), "outputs": summary(matches)}
            if not decision.allowed:  # a blocked output: every image of the call is withheld
                return self._deny(ctx, decision, outputs, timings, notes)
        signed: tuple[SignedImage, ...] = ()
        if self.signer is not None:
            try:
                with clock("sign"):
                    signed = tuple(sign_call(self.signer, images, ctx, decision, notes.get("screening")))
            except SigningError as exc:
                if engine.policy.provenance.required:  # fail closed: the images are withheld
                    self.store.write(
                        outcome_event(
                            ctx, decision=decision, outputs=outputs, durations_ms=timings, error=exc, notes=notes
                        )
                    )
                    raise SigningError(f"{exc}; the images were withheld", ctx.call_id) from exc
                notes["signing_error"] = str(exc)
            for record, item in zip(outputs, signed, strict=False):
                record.update(signed_sha256=item.sha256, manifest=item.manifest_label, mime=item.mime)
        self.store.write(outcome_event(ctx, decision=decision, outputs=outputs, durations_ms=timings, notes=notes))
        return adapter.attach(output, self._governance(ctx, decision, digests, signed, matches))

    def _deny(
        self,
        ctx: CallContext,
        decision: Decision,
        outputs: list[dict[str, Any]],
        timings: dict[str, float],
        notes: dict[str, Any],
    ) -> GuardedResult:
        """Audit a denied call, then raise PolicyViolation, or return no images when on_deny is "return"."""
        self.store.write(outcome_event(ctx, decision=decision, outputs=outputs, durations_ms=timings, notes=notes))
        if self.on_deny == "raise":
            raise PolicyViolation(decision, ctx.call_id)
        return GuardedResult(images=[], governance=self._governance(ctx, decision))

    def _governance(
        self,
        ctx: CallContext,
        decision: Decision,
        digests: tuple[str, ...] = (),
        signed: tuple[SignedImage, ...] = (),
        matches: list[list[Match]] | None = None,
    ) -> Governance:
        found = tuple(tuple(m) for m in matches or [])
        return Governance(ctx.call_id, decision, ctx.policy_name, ctx.policy_version, digests, signed, found)


class _Clock:
    """Times named stages into a dict of milliseconds."""

    def __init__(self, into: dict[str, float]) -> None:
        self.into = into
        self.name = ""
        self.start = 0.0

    def __call__(self, name: str) -> _Clock:
        self.name = name
        return self

    def __enter__(self) -> None:
        self.start = time.perf_counter()

    def __exit__(self, *_exc: object) -> None:
        self.into[self.name] = round((time.perf_counter() - self.start) * 1000, 3)


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
