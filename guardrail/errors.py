"""The errors guardrail raises, all under one root.

GuardrailError
├── ConfigError              a policy or configuration file cannot be used (misuse: fix the input)
│   └── PolicyError          carries .problems, each naming file, line, column and field path
├── PolicyViolation          a call was denied; carries .decision and .audit_id
└── AuditError               the audit database cannot be reached or written (operational)
    ├── DatabaseUnavailable  raised when a Guard starts, not at its first call
    └── AuditWriteError      an event could not be written after retries; no image is returned
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

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


class PolicyViolation(GuardrailError):
    """The policy denied a call. The call never reached the pipeline."""

    def __init__(self, decision: Decision, audit_id: str) -> None:
        self.decision = decision
        self.audit_id = audit_id
        reasons = "; ".join(decision.messages) or "denied by policy"
        super().__init__(
            f"denied by policy ({', '.join(decision.rule_ids) or 'default'}): {reasons} [audit {audit_id}]"
        )


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
