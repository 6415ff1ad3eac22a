"""The numbers behind the compliance report page, for one period: counted by the database (GROUP BY
over the outcome events, JSON unnested by json_each on SQLite and json_array_elements on PostgreSQL),
so a million events are summarised without reading them into Python. Reads only."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

TOP = 10
"""Rows kept in each ranking (users, models, rules...)."""
RECENT_DENIED = 20


@dataclass
class ReportData:
    since: datetime | None
    until: datetime | None
    user: str | None
    bucket: str
    """day or hour: the time axis's unit."""
    statuses: dict[str, int] = field(default_factory=dict)
    flagged: int = 0
    images: int = 0
    over_time: list[dict[str, Any]] = field(default_factory=list)
    """Per bucket: calls, denied."""
    rules: list[dict[str, Any]] = field(default_factory=list)
    """Per fired rule: rule, effect (deny, flag, review, modify), calls."""
    users: list[dict[str, Any]] = field(default_factory=list)
    models: list[dict[str, Any]] = field(default_factory=list)
    adapters: list[dict[str, Any]] = field(default_factory=list)
    policy_versions: list[dict[str, Any]] = field(default_factory=list)
    screening: list[dict[str, Any]] = field(default_factory=list)
    """Per reference set and method: matches."""
    classifier_labels: list[dict[str, Any]] = field(default_factory=list)
    quotas: list[dict[str, Any]] = field(default_factory=list)
    reviews: list[dict[str, Any]] = field(default_factory=list)
    """Review actions on held calls by the item's status after them (pending_review: an approval that
    was not the last; approved; rejected, expiries and erasures included)."""
    policy_changes: list[dict[str, Any]] = field(default_factory=list)
    recent_denied: list[dict[str, Any]] = field(default_factory=list)
    checkpoints: int = 0

    @property
    def calls(self) -> int:
        return sum(self.statuses.values())

    @property
    def block_rate(self) -> float:
        return self.statuses.get("denied", 0) / self.calls if self.calls else 0.0


_SQL = {
    "sqlite": {
        "fired": "json_each(o.detail, '$.decision.fired') AS f",
        "fired_id": "json_extract(f.value, '$.id')",
        "fired_effect": "json_extract(f.value, '$.effect')",
        "matches": "json_each(o.detail, '$.screening.outputs') AS img, json_each(img.value) AS m",
        "match_set": "json_extract(m.value, '$.set')",
        "match_method": "json_extract(m.value, '$.method')",
        "found": (
            "json_each(o.detail, '$.classifiers.outputs') AS img, json_each(img.value) AS model, "
            "json_each(model.value, '$.found') AS d"
        ),
        "found_label": "json_extract(d.value, '$.label')",
        "quota": "json_each(o.detail, '$.decision.quota_remaining') AS q, json_each(o.rules) AS r",
        "quota_match": "q.key = r.value",
        "quota_id": "q.key",
        "adapters": "json_each(o.model, '$.adapters') AS a",
        "adapter": "a.value",
        "day": "substr(o.created_at, 1, 10)",
        "hour": "substr(o.created_at, 1, 13)",
    },
    "postgresql": {
        "fired": "json_array_elements(o.detail -> 'decision' -> 'fired') AS f(value)",
        "fired_id": "f.value ->> 'id'",
        "fired_effect": "f.value ->> 'effect'",
        "matches": (
            "json_array_elements(o.detail -> 'screening' -> 'outputs') AS img(value), "
            "json_array_elements(img.value) AS m(value)"
        ),
        "match_set": "m.value ->> 'set'",
        "match_method": "m.value ->> 'method'",
        "found": (
            "json_array_elements(o.detail -> 'classifiers' -> 'outputs') AS img(value), "
            "json_each(img.value) AS model(key, value), json_array_elements(model.value -> 'found') AS d(value)"
        ),
        "found_label": "d.value ->> 'label'",
        "quota": "json_each(o.detail -> 'decision' -> 'quota_remaining') AS q(key, value), "
        "json_array_elements_text(o.rules) AS r(value)",
        "quota_match": "q.key = r.value",
        "quota_id": "q.key",
        "adapters": "json_array_elements_text(o.model -> 'adapters') AS a(value)",
        "adapter": "a.value",
        "day": "to_char(o.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
        "hour": "to_char(o.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24')",
    },
}


def report_data(
    engine: Engine, *, since: datetime | None = None, until: datetime | None = None, user: str | None = None
) -> ReportData:
    """Everything the report page shows for calls whose outcome falls in [since, until) (and of one
    user). The time axis is hourly for periods of up to three days, else daily. Reads only."""
    import sqlalchemy as sa

    sql = _SQL.get(engine.dialect.name)
    if sql is None:
        raise ValueError(f"the report supports SQLite and PostgreSQL, not {engine.dialect.name}")
    where = ["o.kind = 'outcome'"]
    params: dict[str, Any] = {}
    if since is not None:
        where.append("o.created_at >= :since")
        params["since"] = since
    if until is not None:
        where.append("o.created_at < :until")
        params["until"] = until
    if user is not None:
        where.append("o.user_id = :user")
        params["user"] = user
    condition = " AND ".join(where)
    with engine.connect() as connection:
        first, last = connection.execute(
            sa.text(f"SELECT min(o.created_at), max(o.created_at) FROM audit_events o WHERE {condition}"), params
        ).one()
    span = _span(since or _parse(first), until or _parse(last))
    bucket = "hour" if span is not None and span <= timedelta(days=3) else "day"
    denied = "sum(CASE WHEN o.status = 'denied' THEN 1 ELSE 0 END)"
    changes = " AND ".join(c for c in ["o.kind = 'policy'", *where[1:]] if "user_id" not in c)
    reviews = " AND ".join(c for c in ["o.kind = 'review'", *where[1:]] if "user_id" not in c)
    queries = {
        "statuses": f"SELECT o.status, count(*) AS n, sum(CASE WHEN o.flagged THEN 1 ELSE 0 END) AS flagged "
        f"FROM audit_events o WHERE {condition} GROUP BY o.status",
        "over_time": f"SELECT {sql[bucket]} AS at, count(*) AS calls, {denied} AS denied "
        f"FROM audit_events o WHERE {condition} GROUP BY 1 ORDER BY 1",
        "rules": f"SELECT {sql['fired_id']} AS rule, {sql['fired_effect']} AS effect, count(*) AS calls "
        f"FROM audit_events o, {sql['fired']} WHERE {condition} GROUP BY 1, 2 ORDER BY 3 DESC, 1",
        "users": f"SELECT coalesce(o.user_id, '(none)') AS who, count(*) AS calls, {denied} AS denied, "
        f"sum(CASE WHEN o.flagged THEN 1 ELSE 0 END) AS flagged "
        f"FROM audit_events o WHERE {condition} GROUP BY 1 ORDER BY 3 DESC, 4 DESC, 2 DESC LIMIT {TOP}",
        "models": f"SELECT coalesce(o.model_name, '(none)') AS model, count(*) AS calls, {denied} AS denied "
        f"FROM audit_events o WHERE {condition} GROUP BY 1 ORDER BY 2 DESC LIMIT {TOP}",
        "adapters": f"SELECT {sql['adapter']} AS adapter, count(*) AS calls, {denied} AS denied "
        f"FROM audit_events o, {sql['adapters']} WHERE {condition} GROUP BY 1 ORDER BY 2 DESC LIMIT {TOP}",
        "policy_versions": f"SELECT o.policy_name AS policy, o.policy_version AS version, count(*) AS calls, "
        f"{denied} AS denied, min(o.created_at) AS first_seen FROM audit_events o WHERE {condition} "
        "GROUP BY 1, 2 ORDER BY 5",
        "screening": f"SELECT {sql['match_set']} AS refset, {sql['match_method']} AS method, count(*) AS matches "
        f"FROM audit_events o, {sql['matches']} WHERE {condition} GROUP BY 1, 2 ORDER BY 3 DESC",
        "classifier_labels": f"SELECT {sql['found_label']} AS label, count(*) AS detections "
        f"FROM audit_events o, {sql['found']} WHERE {condition} GROUP BY 1 ORDER BY 2 DESC LIMIT {TOP}",
        "quotas": f"SELECT {sql['quota_id']} AS quota, count(*) AS exhausted FROM audit_events o, {sql['quota']} "
        f"WHERE {condition} AND o.status = 'denied' AND {sql['quota_match']} GROUP BY 1 ORDER BY 2 DESC",
        "reviews": f"SELECT o.status, count(*) AS actions FROM audit_events o WHERE {reviews} GROUP BY 1 ORDER BY 1",
        "policy_changes": "SELECT o.created_at AS at, o.status, o.policy_name AS policy, "
        f"o.policy_version AS version, o.error FROM audit_events o WHERE {changes} ORDER BY o.chain_seq",
        "recent_denied": "SELECT o.call_id, o.created_at AS at, o.user_id AS user_id, o.rules, "
        f"o.model_name AS model, o.privacy_mode, o.prompts FROM audit_events o WHERE {condition} "
        f"AND o.status = 'denied' ORDER BY o.created_at DESC LIMIT {RECENT_DENIED}",
    }

    def rows(query: str) -> list[dict[str, Any]]:
        with engine.connect() as connection:
            return [dict(row) for row in connection.execute(sa.text(query), params).mappings()]

    # each query scans the period once; they are independent, so the database runs them side by side
    with ThreadPoolExecutor(max_workers=min(len(queries), max(2, os.cpu_count() or 1))) as pool:
        results = dict(zip(queries, pool.map(rows, queries.values()), strict=True))
    data = ReportData(since, until, user, bucket)
    for row in results.pop("statuses"):
        data.statuses[row["status"]] = int(row["n"])
        data.flagged += int(row["flagged"] or 0)
    for name, found in results.items():
        setattr(data, name, found)
    with engine.connect() as connection:
        data.images = _images(connection, since, until)
        data.checkpoints = int(_scalar(connection, "SELECT count(*) FROM audit_checkpoints", {}))
    for row in data.over_time:
        row["calls"], row["denied"] = int(row["calls"]), int(row["denied"] or 0)
    return data


def _images(connection: Connection, since: datetime | None, until: datetime | None) -> int:
    """Images returned in the period: the fingerprint registry holds one row per returned image."""
    import sqlalchemy as sa

    from guardrail.audit.tables import output_fingerprints as fp

    query = sa.select(sa.func.count()).select_from(fp)
    if since is not None:
        query = query.where(fp.c.created_at >= since)
    if until is not None:
        query = query.where(fp.c.created_at < until)
    return int(connection.execute(query).scalar() or 0)


def _scalar(connection: Connection, query: str, params: dict[str, Any]) -> Any:
    import sqlalchemy as sa

    return connection.execute(sa.text(query), params).scalar() or 0


def _parse(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


def _span(start: datetime | None, end: datetime | None) -> timedelta | None:
    if start is None or end is None:
        return None
    utc = [moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc) for moment in (start, end)]
    return utc[1] - utc[0]
