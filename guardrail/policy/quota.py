"""Quotas: images per user, role or tenant per time window, counted in the audit database so that
every process and worker shares them. Each check-and-count is one atomic statement
(INSERT ... ON CONFLICT DO UPDATE ... WHERE used + n <= limit), all of a call's quotas in one
transaction: either every quota has room and all are charged, or none is."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from guardrail.audit.store import relax_commit
from guardrail.policy.decision import Decision, FiredRule
from guardrail.policy.schema import Quota
from guardrail.request import GenerationRequest

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

ANONYMOUS = "<anonymous>"


@dataclass(frozen=True)
class QuotaCharge:
    """The outcome of charging a call: what remains of each quota, or the one that was exceeded."""

    remaining: dict[str, int]
    exceeded: FiredRule | None = None


def subjects(quota: Quota, request: GenerationRequest) -> list[str]:
    """Whose budget a request draws on for one quota."""
    if quota.per == "user":
        return [request.user or ANONYMOUS]
    if quota.per == "tenant":
        return [request.tenant or ANONYMOUS]
    return [role for role in request.roles if not quota.when.roles or role in quota.when.roles]


class QuotaLedger:
    """Charges calls against the policy's quotas in the quota_usage table. Thread- and process-safe."""

    def __init__(self, engine: Engine) -> None:
        from guardrail.audit.tables import quota_usage

        self.engine = engine
        self.table = quota_usage
        self._upsert = _upsert_statement(quota_usage, engine.dialect.name)

    def charge(
        self, quotas: list[Quota], request: GenerationRequest, images: int, *, now: float | None = None
    ) -> QuotaCharge:
        """Count `images` against every quota that applies; nothing is counted when one is exceeded. Writes."""
        import sqlalchemy as sa

        moment = time.time() if now is None else now
        applicable = [
            (quota, subject)
            for quota in quotas
            if quota.when.applies(request.user, request.roles)
            for subject in subjects(quota, request)
        ]
        if not applicable:
            return QuotaCharge({})
        remaining: dict[str, int] = {}
        try:
            with self.engine.begin() as connection:  # one transaction: all quotas charged, or none
                relax_commit(connection)  # the call's outcome event makes it durable
                for quota, subject in applicable:
                    window = int(moment // quota.window_seconds * quota.window_seconds)
                    used = None
                    if images <= quota.images:
                        values = {
                            "quota": quota.id,
                            "subject": subject,
                            "window": window,
                            "n": images,
                            "limit": quota.images,
                        }
                        used = connection.execute(self._upsert, values).scalar()
                    if used is None:
                        current = connection.execute(
                            sa.select(self.table.c.used).where(
                                self.table.c.quota_id == quota.id,
                                self.table.c.subject == subject,
                                self.table.c.window_start == window,
                            )
                        ).scalar()
                        raise _Exceeded(quota, subject, quota.images - (current or 0))
                    several = len(subjects(quota, request)) > 1
                    remaining[f"{quota.id}:{subject}" if several else quota.id] = quota.images - int(used)
        except _Exceeded as exceeded:
            quota, left = exceeded.quota, max(0, exceeded.left)
            subject = exceeded.subject
            detail = f"{quota.per} {subject!r}: {images} requested, {left} of {quota.images} left this {quota.window}"
            message = quota.message or f"image quota exceeded ({detail})"
            return QuotaCharge({quota.id: left}, FiredRule(quota.id, "deny", message, detail))
        return QuotaCharge(remaining)


class _Exceeded(Exception):
    def __init__(self, quota: Quota, subject: str, left: int) -> None:
        self.quota, self.subject, self.left = quota, subject, left


def charge_quotas(ledger: QuotaLedger, quotas: list[Quota], request: GenerationRequest, decision: Decision) -> Decision:
    """The decision after charging the images it allows (after any clamping) to the policy's quotas:
    the same with the remaining quota recorded, or a deny under the exceeded quota's own id."""
    per_prompt = decision.modified().get("images_per_prompt", request.images_per_prompt)
    charge = ledger.charge(quotas, request, max(1, len(request.prompts)) * int(per_prompt))
    if charge.exceeded is None:
        return replace(decision, quotas=charge.remaining)
    flags = tuple(rule for rule in decision.fired if rule.effect == "flag")
    return Decision("deny", (*flags, charge.exceeded), quotas=charge.remaining)


def _upsert_statement(table: Any, dialect_name: str) -> Any:
    """Check-and-count in one statement, built once: insert the window's row, or add to it only
    while the sum stays within the limit; RETURNING gives the new count, or nothing when full."""
    import sqlalchemy as sa
    from sqlalchemy.dialects import postgresql, sqlite

    dialect = postgresql if dialect_name == "postgresql" else sqlite
    n: Any = sa.bindparam("n")
    statement = dialect.insert(table).values(
        quota_id=sa.bindparam("quota"), subject=sa.bindparam("subject"), window_start=sa.bindparam("window"), used=n
    )
    return statement.on_conflict_do_update(
        index_elements=[table.c.quota_id, table.c.subject, table.c.window_start],
        set_={"used": table.c.used + n},
        where=table.c.used + n <= sa.bindparam("limit"),
    ).returning(table.c.used)
