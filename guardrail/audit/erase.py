"""Erasing personal data from the log without breaking it: the personal fields of the chosen events
are cleared and marked erased, their hashes stay (so the chain still verifies, as REDACTED), and an
erasure event is appended saying how many events of which calls were erased, and why."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

from guardrail.audit.chain import ERASED
from guardrail.audit.events import AuditEvent, system_event
from guardrail.audit.query import MAX_AGE_DAYS
from guardrail.errors import InputError

if TYPE_CHECKING:
    from guardrail.audit.store import AuditStore


def erase(
    store: AuditStore,
    *,
    user: str | None = None,
    call_id: str | None = None,
    older_than_days: float | None = None,
    reason: str = "",
) -> int:
    """Erase the personal data of a user's events, of one call, or of everything older than N days
    (retention). Returns how many events were erased. The fingerprint registry is not personal data:
    an erasure keeps it, retention deletes it with the calls. Writes the database."""
    import sqlalchemy as sa

    from guardrail.audit.tables import audit_events as ev
    from guardrail.audit.tables import output_fingerprints

    if sum(x is not None for x in (user, call_id, older_than_days)) != 1:
        raise InputError("give exactly one of user, call_id and older_than_days")
    if older_than_days is not None and not 0 < older_than_days <= MAX_AGE_DAYS:
        raise InputError(f"an age must be more than 0 and at most {MAX_AGE_DAYS} days, not {older_than_days}")
    condition = ev.c.erased_at.is_(None) & ev.c.kind.in_(("request", "outcome"))
    if user is not None:
        condition &= ev.c.user_id == user
    elif call_id is not None:
        condition &= ev.c.call_id == call_id
    else:
        assert older_than_days is not None
        cutoff = datetime.now(timezone.utc) - timedelta(days=older_than_days)
        condition &= ev.c.created_at < cutoff
    now = datetime.now(timezone.utc)
    with store.engine.begin() as connection:
        calls = sorted({row[0] for row in connection.execute(sa.select(ev.c.call_id).where(condition))})
        erased = connection.execute(ev.update().where(condition).values(**ERASED, erased_at=now)).rowcount
        if older_than_days is not None:
            connection.execute(output_fingerprints.delete().where(output_fingerprints.c.created_at < cutoff))
    if erased:
        what = "user" if user is not None else "call" if call_id is not None else f"older than {older_than_days} days"
        store.write(_erasure_event(what, calls, erased, reason))
    return int(erased or 0)


def _erasure_event(what: str, calls: list[str], count: int, reason: str) -> AuditEvent:
    return system_event("erasure", "applied", {"selected_by": what, "events": count, "calls": calls, "reason": reason})
