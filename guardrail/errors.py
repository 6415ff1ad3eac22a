"""The errors guardrail raises, all under one root.

Misuse (fix the input; the CLI exits 2) and refusals are separate branches from operational failures:

GuardrailError
├── ConfigError              a policy or configuration file cannot be used
│   ├── PolicyError          carries .problems, each naming file, line, column and field path
│   └── ReferenceSetError    a reference set cannot be read or changed; names the file
├── InputError               an image or file handed to guardrail is unusable
│   ├── ImageTooLarge        over the byte or pixel limit; refused before decoding (also a ValueError)
│   └── InvalidImage         empty, truncated, corrupt, or no image at all (also a ValueError)
├── PolicyViolation          a call was denied before generation, or its outputs were blocked by
│                            screening; carries .decision and .audit_id; no image is returned
├── GenerationStopped        raised inside a pipeline's step callback when a check on a latent preview
│                            blocks; the generate stage turns it into a deny (never reaches the caller)
├── PendingReview            a call's images are held for review (on_review: raise); carries
│                            .decision and .audit_id; approval releases them
├── ReviewError              a review action cannot be taken (unknown call, not pending, the
│   │                        requester approving, a reviewer twice); the message says which
│   └── ReviewConflict       another reviewer acted on the item first: reload and decide again
├── SigningError             an image could not be signed; carries .audit_id when a call was on record
├── MarkingError             a watermark, visible label or blur the policy requires could not be put
│                            on an image; carries .audit_id; no image is returned
└── AuditError               the audit database cannot be reached or written (operational)
    ├── DatabaseUnavailable  raised when a Guard starts, not at its first call
    └── AuditWriteError      an event could not be written after retries; no image is returned

Every error guardrail raises on purpose is one of these; a test walks the package to hold it so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from guardrail.policy.decision import Decision


class GuardrailError(Exception):
    """Root of every error guardrail raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input file, located as precisely as the parser allows."""

    message: str
    file: str | None = None
    line: int | None = None
    column: int | None = None
    field: str | None = None

    def __str__(self) -> str:
        where = self.file or "<input>"
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        field = f" {self.field}:" if self.field else ""
        return f"{where}:{field} {self.message}"


class ConfigError(GuardrailError):
    """A configuration or policy input is unusable."""


class PolicyError(ConfigError):
    """A policy file failed to parse or validate; every problem is listed, not just the first."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        noun = "problem" if len(problems) == 1 else "problems"
        super().__init__(f"{len(problems)} {noun}:\n" + "\n".join(f"  {p}" for p in problems))


class ReferenceSetError(ConfigError):
    """A reference set cannot be read or changed; the message names the file and what is wrong."""


class InputError(GuardrailError):
    """An image or file handed to guardrail cannot be used; the message names it."""


class ImageTooLarge(InputError, ValueError):
    """An input image is over the byte or pixel limit; nothing was decoded."""


class InvalidImage(InputError, ValueError):
    """An input is not a whole, readable image; the message names it and says what PIL found."""


class PolicyViolation(GuardrailError):
    """The policy denied a call: before generation (the pipeline never ran), or after it, when
    screening blocked an output (every image of the call is withheld). `.decision` says which rules
    fired and why; `.audit_id` is the call in the audit log."""

    def __init__(self, decision: Decision, audit_id: str) -> None:
        self.decision = decision
        self.audit_id = audit_id
        reasons = "; ".join(decision.messages) or "denied by policy"
        super().__init__(
            f"denied by policy ({', '.join(decision.rule_ids) or 'default'}): {reasons} [audit {audit_id}]"
        )


class GenerationStopped(GuardrailError):
    """A check on a latent preview blocked the call at `step`: raised from the pipeline's step callback
    to stop it there; the generate stage catches it and the call is denied with `fired`."""

    def __init__(self, fired: list[Any], step: int, steps: int) -> None:
        self.fired, self.step, self.steps = fired, step, steps
        super().__init__(f"generation stopped at step {step} of {steps}: {', '.join(r.id for r in fired)}")


class PendingReview(GuardrailError):
    """The call's images were generated and are held until reviewers approve them (the policy sent it
    to review); raised when on_review is "raise". `.audit_id` names the call in the review queue."""

    def __init__(self, decision: Decision, audit_id: str) -> None:
        self.decision = decision
        self.audit_id = audit_id
        rules = ", ".join(rule.id for rule in decision.fired if rule.effect == "review")
        super().__init__(f"held for review ({rules}): approval releases the images [audit {audit_id}]")


class ReviewError(GuardrailError):
    """A review action cannot be taken; the message says why."""


class ReviewConflict(ReviewError):
    """Another reviewer acted on the item between reading it and acting: nothing was recorded."""


class AuditError(GuardrailError):
    """The audit log could not be used."""


class DatabaseUnavailable(AuditError):
    """The audit database cannot be reached or is not at the expected schema."""


class AuditWriteError(AuditError):
    """An audit event could not be written. guardrail fails closed: no image is returned."""


class SigningError(GuardrailError):
    """An image could not be signed. Where the policy requires signing, the images are withheld."""

    def __init__(self, message: str, audit_id: str | None = None) -> None:
        self.audit_id = audit_id
        super().__init__(message)


class MarkingError(GuardrailError):
    """An image could not carry the watermark or the visible label the policy requires (too small, a
    pixel format the marking stages do not write, a mark that does not read back, a label that does not
    fit); the call's images are withheld."""

    def __init__(self, message: str, audit_id: str | None = None) -> None:
        self.audit_id = audit_id
        super().__init__(message)
