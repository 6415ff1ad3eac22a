"""guardrail: governance and provenance middleware for AI image generation.

    guard = guardrail.Guard.from_config("guardrail.yaml")
    pipe = guard.wrap(pipeline)
    out = pipe("a watercolor fox", user="alice")
    out.governance.decision

Names are imported on first use, so `import guardrail` stays fast and never imports torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "AuditError": "guardrail.errors",
    "AuditWriteError": "guardrail.errors",
    "CallFilter": "guardrail.audit.query",
    "CallSummary": "guardrail.audit.query",
    "ConfigError": "guardrail.errors",
    "DatabaseUnavailable": "guardrail.errors",
    "FingerprintRegistry": "guardrail.marking.trace",
    "Decision": "guardrail.policy.decision",
    "FiredRule": "guardrail.policy.decision",
    "GenerationRequest": "guardrail.request",
    "Governance": "guardrail.request",
    "Guard": "guardrail.guard",
    "GuardConfig": "guardrail.config",
    "GuardedPipeline": "guardrail.guard",
    "GuardedResult": "guardrail.request",
    "GuardrailError": "guardrail.errors",
    "HmacKey": "guardrail.privacy",
    "ImageTooLarge": "guardrail.errors",
    "InputError": "guardrail.errors",
    "InvalidImage": "guardrail.errors",
    "ImageEmbedder": "guardrail.screening.embeddings",
    "ImageSigner": "guardrail.provenance.signing",
    "InputImage": "guardrail.request",
    "ModelIdentity": "guardrail.request",
    "Match": "guardrail.screening.screen",
    "MarkingError": "guardrail.errors",
    "Modification": "guardrail.policy.decision",
    "Policy": "guardrail.policy.schema",
    "PolicyEngine": "guardrail.policy.engine",
    "PolicyError": "guardrail.errors",
    "PolicyViolation": "guardrail.errors",
    "PendingReview": "guardrail.errors",
    "GenerationStopped": "guardrail.errors",
    "ReviewConflict": "guardrail.errors",
    "ReviewError": "guardrail.errors",
    "ReviewItem": "guardrail.review.queue",
    "ReviewQueue": "guardrail.review.queue",
    "Problem": "guardrail.errors",
    "ReferenceSet": "guardrail.screening.refsets",
    "ReferenceSetError": "guardrail.errors",
    "SignedImage": "guardrail.request",
    "SigningError": "guardrail.errors",
    "Trace": "guardrail.marking.trace",
    "Verification": "guardrail.provenance.verify",
    "VerificationReport": "guardrail.audit.verify",
    "create_dev_ca": "guardrail.provenance.devca",
    "init_project": "guardrail.project",
    "load_config": "guardrail.config",
    "load_policy": "guardrail.policy.load",
    "open_image": "guardrail.images",
    "parse_policy": "guardrail.policy.load",
    "query_calls": "guardrail.audit.query",
    "trace_bytes": "guardrail.marking.trace",
    "verify_bytes": "guardrail.provenance.verify",
    "verify_log": "guardrail.audit.verify",
}

__all__ = sorted([*_EXPORTS, "__version__"])


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'guardrail' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:
    from guardrail.audit.query import CallFilter, CallSummary, query_calls
    from guardrail.audit.verify import VerificationReport, verify_log
    from guardrail.config import GuardConfig, load_config
    from guardrail.errors import (
        AuditError,
        AuditWriteError,
        ConfigError,
        DatabaseUnavailable,
        GenerationStopped,
        GuardrailError,
        ImageTooLarge,
        InputError,
        InvalidImage,
        MarkingError,
        PendingReview,
        PolicyError,
        PolicyViolation,
        Problem,
        ReferenceSetError,
        ReviewConflict,
        ReviewError,
        SigningError,
    )
    from guardrail.guard import Guard, GuardedPipeline
    from guardrail.images import open_image
    from guardrail.marking.trace import FingerprintRegistry, Trace, trace_bytes
    from guardrail.policy.decision import Decision, FiredRule, Modification
    from guardrail.policy.engine import PolicyEngine
    from guardrail.policy.load import load_policy, parse_policy
    from guardrail.policy.schema import Policy
    from guardrail.privacy import HmacKey
    from guardrail.project import init_project
    from guardrail.provenance.devca import create_dev_ca
    from guardrail.provenance.signing import ImageSigner
    from guardrail.provenance.verify import Verification, verify_bytes
    from guardrail.request import GenerationRequest, Governance, GuardedResult, InputImage, ModelIdentity, SignedImage
    from guardrail.review.queue import ReviewItem, ReviewQueue
    from guardrail.screening.embeddings import ImageEmbedder
    from guardrail.screening.screen import Match
