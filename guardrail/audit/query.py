"""Reading the audit log back: a typed query over calls (one row per call: its request joined with
its outcome), per-call events for `show`, and counts for `stats`. Reads only, through SQLAlchemy."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from guardrail.errors import InputError

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine


STATUSES = ("pending", "allowed", "modified", "denied", "error", "pending_review")
"""A call's status: pending until its outcome is written."""
DECISIONS = ("allow", "modify", "deny")
MAX_AGE_DAYS = 100 * 366
"""The oldest an age (`--since 30d`, retention) may reach back: older is a typo, not a query."""


@dataclass(frozen=True)
class CallFilter:
    """What to select. Every field narrows the result; unset fields do not filter. A status or decision
    outside the known values is an InputError (it would silently match nothing)."""

    since: datetime | None = None
    until: datetime | None = None
    user: str | None = None
    role: str | None = None
    status: str | None = None
    """pending, allowed, modified, denied, error or pending_review (images held for review)."""
    decision: str | None = None
    """allow, modify or deny."""
    rule: str | None = None
    """A fired rule id (quota ids included)."""
    reference_set: str | None = None
    """Calls with an image that matched this protected reference set (blocked or flagged)."""
    model: str | None = None
    """Model name; `*` is a wildcard."""
    policy_version: str | None = None
    """A version hash or a prefix of one."""
    text: str | None = None
    """Case-insensitive search in prompts logged in plaintext."""
    limit: int | None = 100

    def __post_init__(self) -> None:
        for name, allowed in (("status", STATUSES), ("decision", DECISIONS)):
            value = getattr(self, name)
            if value is not None and value not in allowed:
                raise InputError(f"unknown {name} {value!r}; expected one of {', '.join(allowed)}")
        if self.limit is not None and self.limit < 1:
            raise InputError(f"limit must be at least 1, not {self.limit}")


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
    roles: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "call_id": self.call_id,
            "started_at": self.started_at.isoformat(),
            "user": self.user,
            "roles": self.roles,
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


def _json_contains(engine: Engine, column: Any, value: str) -> Any:
    """`value` is an element of the JSON array in `column` (SQLite json_each, PostgreSQL jsonb @>)."""
    import sqlalchemy as sa

    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import JSONB

        return sa.cast(column, JSONB).contains([value])
    elements = sa.func.json_each(column).table_valued("value")
    return sa.exists().select_from(elements).where(elements.c.value == value)


def _any_element_contains(engine: Engine, column: Any, text: str) -> Any:
    """Some string element of the JSON array in `column` contains `text`, case-insensitively. The
    decoded values are searched, not the JSON text: quotes and backslashes in prompts match as typed,
    and JSON punctuation in the search matches only itself."""
    import sqlalchemy as sa

    function = sa.func.json_array_elements_text if engine.dialect.name == "postgresql" else sa.func.json_each
    elements = function(column).table_valued("value")
    return sa.exists().select_from(elements).where(sa.cast(elements.c.value, sa.Text).icontains(text, autoescape=True))


def _calls_query(engine: Engine, where: CallFilter) -> Any:
    import sqlalchemy as sa

    from guardrail.audit.tables import audit_events

    request, outcome = audit_events.alias("request"), audit_events.alias("outcome")
    status = sa.func.coalesce(outcome.c.status, request.c.status)
    query = (
        sa.select(
            request.c.call_id,
            request.c.created_at,
            request.c.user_id,
            request.c.roles,
            status.label("status"),
            outcome.c.decision,
            outcome.c.rules,
            request.c.model_name,
            request.c.policy_name,
            request.c.policy_version,
        )
        .select_from(
            request.outerjoin(outcome, sa.and_(outcome.c.call_id == request.c.call_id, outcome.c.kind == "outcome"))
        )
        .where(request.c.kind == "request")
    )
    conditions = []
    if where.since is not None:
        conditions.append(request.c.created_at >= where.since)
    if where.until is not None:
        conditions.append(request.c.created_at < where.until)
    if where.user is not None:
        conditions.append(request.c.user_id == where.user)
    if where.role is not None:
        conditions.append(_json_contains(engine, request.c.roles, where.role))
    newest_first = [request.c.created_at.desc(), request.c.chain_seq.desc()]
    if where.status == "pending":
        conditions.append(outcome.c.call_id.is_(None))
    elif where.status is not None:
        # Filter and order on the outcome's (status, created_at) index: no sort of every such call.
        conditions.append(outcome.c.status == where.status)
        newest_first = [outcome.c.created_at.desc(), outcome.c.chain_seq.desc()]
    query = query.order_by(*newest_first)
    if where.decision is not None:
        conditions.append(outcome.c.decision == where.decision)
    if where.rule is not None:
        conditions.append(_json_contains(engine, outcome.c.rules, where.rule))
    if where.reference_set is not None:  # every match fires the rule screening.<set>
        conditions.append(_json_contains(engine, outcome.c.rules, f"screening.{where.reference_set}"))
    if where.model is not None:
        pattern = where.model.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_").replace("*", "%")
        conditions.append(request.c.model_name.like(pattern, escape="\\"))
    if where.policy_version is not None:
        conditions.append(request.c.policy_version.startswith(where.policy_version, autoescape=True))
    if where.text is not None:
        conditions.append(request.c.privacy_mode == "plaintext")
        conditions.append(_any_element_contains(engine, request.c.prompts, where.text))
    if conditions:
        query = query.where(*conditions)
    if where.limit is not None:
        query = query.limit(where.limit)
    return query


def query_calls(engine: Engine, where: CallFilter = CallFilter()) -> list[CallSummary]:
    """The calls that match, newest first; a call with no outcome yet shows as pending, and one held for
    review shows what reviewers decided since (`approved after review`, `rejected after review`); the
    status filter selects on the outcome (pending_review: every call that was held). Reads only."""
    with engine.connect() as connection:
        rows = connection.execute(_calls_query(engine, where)).mappings().all()
        held = [r["call_id"] for r in rows if r["status"] == "pending_review"]
        decided = _review_outcomes(connection, held) if held else {}
    return [
        CallSummary(
            call_id=r["call_id"],
            started_at=as_utc(r["created_at"]),
            user=r["user_id"],
            status=decided.get(r["call_id"], r["status"]),
            decision=r["decision"],
            rules=r["rules"] or [],
            model=r["model_name"],
            policy=r["policy_name"],
            policy_version=r["policy_version"],
            roles=r["roles"] or [],
        )
        for r in rows
    ]


def _review_outcomes(connection: Any, call_ids: list[str]) -> dict[str, str]:
    """For held calls that reviewers have decided: their status since (approved or rejected after review)."""
    from guardrail.audit.review import deciding_action, review_actions

    found = {}
    for call_id, actions in review_actions(connection, call_ids).items():
        decided = deciding_action(actions)
        if decided is not None:
            found[call_id] = f"{decided['status']} after review"
    return found


def list_calls(
    engine: Engine, *, limit: int = 50, user: str | None = None, status: str | None = None
) -> list[CallSummary]:
    """The most recent calls, newest first. Reads only."""
    return query_calls(engine, CallFilter(limit=limit, user=user, status=status))


@dataclass(frozen=True)
class Stats:
    calls: int
    by_status: dict[str, int]
    by_rule: dict[str, int]
    by_user: dict[str, int]
    by_day: dict[str, int]

    def as_dict(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "by_status": self.by_status,
            "by_rule": self.by_rule,
            "by_user": self.by_user,
            "by_day": self.by_day,
        }


def stats(engine: Engine, where: CallFilter = CallFilter(limit=None)) -> Stats:
    """Counts of the matching calls by status, fired rule, user and day (UTC). Reads only."""
    by_status: Counter[str] = Counter()
    by_rule: Counter[str] = Counter()
    by_user: Counter[str] = Counter()
    by_day: Counter[str] = Counter()
    calls = 0
    with engine.connect() as connection:
        result = connection.execution_options(yield_per=5000).execute(_calls_query(engine, where))
        for row in result.mappings():
            calls += 1
            by_status[row["status"]] += 1
            by_rule.update(row["rules"] or [])
            by_user[row["user_id"] or "(none)"] += 1
            by_day[as_utc(row["created_at"]).date().isoformat()] += 1
    return Stats(
        calls,
        dict(by_status.most_common()),
        dict(by_rule.most_common()),
        dict(by_user.most_common()),
        dict(sorted(by_day.items())),
    )


def call_events(engine: Engine, call_id: str) -> list[dict[str, Any]]:
    """Every event of one call (a unique prefix of the id is enough), oldest first. Reads only."""
    import sqlalchemy as sa

    from guardrail.audit.tables import audit_events as ev

    query = sa.select(ev).where(ev.c.call_id.startswith(call_id, autoescape=True)).order_by(ev.c.chain_seq)
    with engine.connect() as connection:
        rows = [dict(r) for r in connection.execute(query).mappings().all()]
    if len({r["call_id"] for r in rows}) > 1:
        raise LookupError(f"{call_id!r} matches more than one call; give more of the id")
    return rows


def events_between(engine: Engine, since: datetime | None, until: datetime | None) -> Any:
    """Every event (all kinds) in a time window, in chain order, streamed. Reads only."""
    import sqlalchemy as sa

    from guardrail.audit.tables import audit_events as ev

    yield from _stream(engine, sa.select(ev).order_by(ev.c.chain_seq), since, until)


def _stream(engine: Engine, query: Any, since: datetime | None, until: datetime | None) -> Any:
    """The rows of an events query within a time window (by the event's created_at), streamed as dicts."""
    from guardrail.audit.tables import audit_events as ev

    if since is not None:
        query = query.where(ev.c.created_at >= since)
    if until is not None:
        query = query.where(ev.c.created_at < until)
    with engine.connect() as connection:
        yield from (dict(r) for r in connection.execution_options(yield_per=5000).execute(query).mappings())


def checkpoints(engine: Engine) -> list[dict[str, Any]]:
    """The signed checkpoints of the hash chain, oldest first, as plain values (the fields of a
    Checkpoint: for export and verification). Reads only."""
    import sqlalchemy as sa

    from guardrail.audit.checkpoints import Checkpoint
    from guardrail.audit.tables import audit_checkpoints

    fields = tuple(Checkpoint.__dataclass_fields__)
    with engine.connect() as connection:
        rows = connection.execute(sa.select(audit_checkpoints).order_by(audit_checkpoints.c.id)).mappings().all()
    return [{name: row[name] for name in fields} for row in rows]


def logged_requests(engine: Engine, since: datetime | None = None, until: datetime | None = None) -> Any:
    """Each finished call's request event, with its outcome's decision and rules (`outcome_decision`,
    `outcome_rules`), in chain order, streamed. Reads only."""
    import sqlalchemy as sa

    from guardrail.audit.tables import audit_events as ev

    outcome = ev.alias("outcome")
    query = (
        sa.select(ev, outcome.c.decision.label("outcome_decision"), outcome.c.rules.label("outcome_rules"))
        .select_from(ev.join(outcome, sa.and_(outcome.c.call_id == ev.c.call_id, outcome.c.kind == "outcome")))
        .where(ev.c.kind == "request")
        .order_by(ev.c.seq)
    )
    yield from _stream(engine, query, since, until)


def audit_record(engine: Engine, verification: Any) -> dict[str, Any]:
    """What the audit log says of the call a verified image names (a provenance Verification): found,
    status, decision, user, time, and whether the file's SHA-256 is one the call logged. Reads only."""
    audit_id = verification.audit_id or ""
    events = call_events(engine, audit_id) if audit_id else []
    outcome = next((e for e in events if e["kind"] == "outcome"), None)
    if outcome is None:
        return {"audit_id": audit_id, "found": False, "hash_matches": False}
    detail = outcome["detail"] if isinstance(outcome["detail"], dict) else json.loads(outcome["detail"])
    logged = [o.get("signed_sha256") for o in detail.get("outputs", [])]
    status = outcome["status"]
    for event in events:  # a call held for review: its images were signed when approved
        if event["kind"] == "review":
            status = event["status"]
            logged += [r.get("sha256") for r in (event["detail"] or {}).get("released", [])]
    return {
        "audit_id": audit_id,
        "found": True,
        "status": status,
        "decision": outcome["decision"],
        "user": outcome["user_id"],
        "logged_at": str(outcome["created_at"]),
        "hash_matches": verification.sha256 in logged,
    }


def as_signed(value: int) -> int:
    """A 64-bit hash as the registry stores it (BIGINT is signed)."""
    return value - (1 << 64) if value >= 1 << 63 else value


def fingerprint_hashes(engine: Engine, after_id: int = 0) -> tuple[Any, Any]:
    """The fingerprint registry's rows with an id above `after_id`, as two arrays: row ids (int64) and
    the four hashes of each row (uint64, n x 4, in guardrail.screening.hashes.COLUMNS order), read
    straight from the driver (Row objects cost ten times as much). Reads only."""
    import numpy as np
    import sqlalchemy as sa

    from guardrail.audit.tables import output_fingerprints as fp

    query = sa.select(fp.c.id, fp.c.hash0, fp.c.hash1, fp.c.hash2, fp.c.hash3).where(fp.c.id > after_id)
    sql = str(query.order_by(fp.c.id).compile(dialect=engine.dialect, compile_kwargs={"literal_binds": True}))
    with engine.connect() as connection:
        driver: Any = connection.connection.driver_connection
        cursor = driver.cursor()  # plain tuples
        try:
            cursor.execute(sql)
            table = np.array(cursor.fetchall(), dtype=np.int64).reshape(-1, 5)
        finally:
            cursor.close()
    return table[:, 0].copy(), np.ascontiguousarray(table[:, 1:]).view(np.uint64)


def fingerprint_count(engine: Engine) -> int:
    """How many rows the fingerprint registry holds. Reads only."""
    import sqlalchemy as sa

    from guardrail.audit.tables import output_fingerprints as fp

    with engine.connect() as connection:
        return int(connection.execute(sa.select(sa.func.count()).select_from(fp)).scalar_one())


def fingerprint_owners(engine: Engine, ids: list[int]) -> dict[int, tuple[str, int]]:
    """Registry row id -> (call id, image index), for the rows asked for. Reads only."""
    import sqlalchemy as sa

    from guardrail.audit.tables import output_fingerprints as fp

    if not ids:
        return {}
    query = sa.select(fp.c.id, fp.c.call_id, fp.c.image_index).where(fp.c.id.in_(ids))
    with engine.connect() as connection:
        return {int(r[0]): (str(r[1]), int(r[2])) for r in connection.execute(query)}


def watermark_owners(engine: Engine, token: int) -> list[tuple[str, int, str | None]]:
    """(call id, image index, signed file's SHA-256) of every logged output marked with this watermark
    token (usually one; tokens are random, so two of millions may share one). Reads only."""
    import sqlalchemy as sa

    from guardrail.audit.tables import output_fingerprints as fp

    query = sa.select(fp.c.call_id, fp.c.image_index, fp.c.signed_sha256).where(fp.c.watermark == token)
    with engine.connect() as connection:
        rows = connection.execute(query.order_by(fp.c.id)).all()
    return [(str(r[0]), int(r[1]), r[2]) for r in rows]


def call_summary(engine: Engine, call_id: str) -> dict[str, Any]:
    """One call as `audit show` heads it: id, time, user, status, decision, rules, model, policy. Reads only."""
    events = call_events(engine, call_id)
    if not events:
        return {"call_id": call_id, "found": False}
    request, outcome = events[0], next((e for e in events if e["kind"] == "outcome"), None)
    return {
        "call_id": request["call_id"],
        "found": True,
        "started_at": str(request["created_at"]),
        "user": request["user_id"],
        "status": outcome["status"] if outcome else request["status"],
        "decision": outcome["decision"] if outcome else None,
        "rules": list(outcome["rules"] or []) if outcome else [],
        "model": request["model_name"],
        "policy": f"{request['policy_name']} {request['policy_version'][:12]}",
    }
