"""The review queue's SQL: calls held for review (outcome events with status pending_review) and the
review actions on them (events of kind "review", in the hash chain like every other event). The
queue's state is derived from these events alone, so it is as tamper-evident as the log."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

HELD = "pending_review"
"""The outcome status of a call whose images are held for review."""
REVIEW = "review"
"""The kind of a review action's event."""


DECIDED = ("approved", "rejected")
"""The statuses a review action leaves a held call in when it ends the review."""


def deciding_action(actions: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The review action that ended a held call's review (its status approved or rejected), if any."""
    return next((action for action in reversed(actions) if action["status"] in DECIDED), None)


def held_calls(
    source: Engine | Connection, *, call_id: str | None = None, user: str | None = None
) -> list[dict[str, Any]]:
    """Outcome events of calls held for review, oldest first: all, one call (a unique prefix of its
    id is enough) or one user's. Reads only."""
    import sqlalchemy as sa

    from guardrail.audit.tables import audit_events as ev

    query = sa.select(ev).where(ev.c.kind == "outcome", ev.c.status == HELD).order_by(ev.c.chain_seq)
    if call_id is not None:
        query = query.where(ev.c.call_id.startswith(call_id, autoescape=True))
    if user is not None:
        query = query.where(ev.c.user_id == user)
    return _rows(source, query)


def review_actions(source: Engine | Connection, call_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    """The review actions on each of these calls, in chain order. Reads only."""
    import sqlalchemy as sa

    from guardrail.audit.tables import audit_events as ev

    found: dict[str, list[dict[str, Any]]] = {call_id: [] for call_id in call_ids}
    for start in range(0, len(call_ids), 500):  # bounded IN lists
        chunk = call_ids[start : start + 500]
        query = sa.select(ev).where(ev.c.kind == REVIEW, ev.c.call_id.in_(chunk)).order_by(ev.c.chain_seq)
        for row in _rows(source, query):
            found[row["call_id"]].append(row)
    return found


def _rows(source: Engine | Connection, query: Any) -> list[dict[str, Any]]:
    """Rows as dicts, read on a connection of an Engine's own or inside the caller's transaction."""
    from sqlalchemy.engine import Engine

    if isinstance(source, Engine):
        with source.connect() as connection:
            return [dict(r) for r in connection.execute(query).mappings().all()]
    return [dict(r) for r in source.execute(query).mappings().all()]
