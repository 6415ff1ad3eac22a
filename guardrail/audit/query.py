"""Reading the audit log back: one row per call for listings, every event of a call for `show`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine


@dataclass(frozen=True)
class CallSummary:
    """One guarded call as a compliance analyst lists it."""

    call_id: str
    started_at: datetime
    user: str | None
    status: str
    decision: str | None
    rules: list[str]
    model: str | None
    policy: str
    policy_version: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "call_id": self.call_id,
            "started_at": self.started_at.isoformat(),
            "user": self.user,
            "status": self.status,
            "decision": self.decision,
            "rules": self.rules,
            "model": self.model,
            "policy": self.policy,
            "policy_version": self.policy_version,
        }


def as_utc(moment: datetime) -> datetime:
    """Stored times are UTC; SQLite returns them without a zone."""
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def list_calls(
    engine: Engine, *, limit: int = 50, user: str | None = None, status: str | None = None
) -> list[CallSummary]:
    """The most recent calls, newest first; a call with no outcome yet shows as pending. Reads only."""
    import sqlalchemy as sa

    from guardrail.audit.tables import audit_events as ev

    outcome = ev.alias("outcome")
    query = (
        sa.select(
            ev,
            outcome.c.status.label("o_status"),
            outcome.c.decision.label("o_decision"),
            outcome.c.rules.label("o_rules"),
        )
        .select_from(ev.outerjoin(outcome, sa.and_(outcome.c.call_id == ev.c.call_id, outcome.c.kind == "outcome")))
        .where(ev.c.kind == "request")
        .order_by(ev.c.seq.desc())
        .limit(limit)
    )
    if user is not None:
        query = query.where(ev.c.user_id == user)
    if status is not None:
        query = query.where(sa.func.coalesce(outcome.c.status, ev.c.status) == status)
    with engine.connect() as connection:
        rows = connection.execute(query).mappings().all()
    return [
        CallSummary(
            call_id=r["call_id"],
            started_at=as_utc(r["created_at"]),
            user=r["user_id"],
            status=r["o_status"] or r["status"],
            decision=r["o_decision"],
            rules=r["o_rules"] or [],
            model=r["model_name"],
            policy=r["policy_name"],
            policy_version=r["policy_version"],
        )
        for r in rows
    ]


def call_events(engine: Engine, call_id: str) -> list[dict[str, Any]]:
    """Every event of one call (a unique prefix of the id is enough), oldest first. Reads only."""
    import sqlalchemy as sa

    from guardrail.audit.tables import audit_events as ev

    query = sa.select(ev).where(ev.c.call_id.startswith(call_id, autoescape=True)).order_by(ev.c.seq)
    with engine.connect() as connection:
        rows = [dict(r) for r in connection.execute(query).mappings().all()]
    if len({r["call_id"] for r in rows}) > 1:
        raise LookupError(f"{call_id!r} matches more than one call; give more of the id")
    return rows
