"""The hash chain that makes the audit log tamper-evident.

Every event stores two payload hashes — `core_hash` over what it says happened (ids, times,
status, decision, rules, policy, model, error) and `personal_hash` over the personal data
(user, roles, prompts, parameters, inputs, detail) — and an `entry_hash` chaining both to the
previous entry under a gap-free `chain_seq`:

    entry_hash = SHA-256("{chain_seq}|{prev_hash}|{core_hash}|{personal_hash}")

Erasing personal data keeps `personal_hash`, so an erased event still verifies (as REDACTED) and
its core is still checked. Signed checkpoints (audit/checkpoints.py) anchor the chain, so that
recomputing it, or cutting off its end, is caught too.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from typing import Any

GENESIS = "0" * 64
CORE_FIELDS = (
    "event_id", "call_id", "kind", "created_at", "schema_version", "status", "decision", "flagged", "rules",
    "policy_name", "policy_version", "pipeline_class", "model_name", "privacy_mode", "hmac_key_id", "model", "error",
)  # fmt: skip
PERSONAL_FIELDS = ("user_id", "roles", "prompts", "negative_prompts", "params", "inputs", "detail")
ERASED: dict[str, Any] = {
    "user_id": None, "roles": [], "prompts": [], "negative_prompts": [], "params": {}, "inputs": [], "detail": {},
}  # fmt: skip


def canonical_time(value: Any) -> str:
    """A time as the chain hashes it: UTC, microseconds, no zone suffix (SQLite returns it naive)."""
    if isinstance(value, str):
        if len(value) == 26 and value[10] == " " and value[19] == ".":  # SQLite's stored text, already UTC
            return f"{value[:10]}T{value[11:]}"
        value = datetime.fromisoformat(value)
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    return value.isoformat(timespec="microseconds")


_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
_encode_string = json.encoder.encode_basestring  # what the encoder above does for a str (ensure_ascii=False)
_PLANS: dict[tuple[tuple[str, ...], frozenset[str]], list[tuple[str, str, int]]] = {}
_VALUE, _TIME, _RAW = 0, 1, 2


def canonical_json(value: Any) -> str:
    """The one JSON serialisation guardrail writes and hashes: sorted keys, no spaces, UTF-8."""
    return _ENCODER.encode(value)


def _digest(row: dict[str, Any], fields: tuple[str, ...], raw: frozenset[str] = frozenset()) -> str:
    """SHA-256 of the canonical JSON object {field: value}, built field by field (the same text
    json.dumps(sort_keys=True) gives). Fields in `raw` hold JSON text already in canonical form,
    as stored, and are used as they are (verification reads them so, without parsing)."""
    plan = _PLANS.get((fields, raw))
    if plan is None:
        kinds = {"created_at": _TIME, **dict.fromkeys(raw, _RAW)}
        plan = _PLANS[(fields, raw)] = [(n, _encode_string(n) + ":", kinds.get(n, _VALUE)) for n in sorted(fields)]
    parts = []
    for name, key, kind in plan:
        value = row[name]
        if value is None:
            parts.append(key + "null")
        elif kind == _RAW:
            parts.append(key + value)
        elif kind == _TIME:
            parts.append(key + _encode_string(canonical_time(value)))
        elif type(value) is str:
            parts.append(key + _encode_string(value))
        elif value is True or value is False:
            parts.append(key + ("true" if value else "false"))
        elif type(value) is int:
            parts.append(key + str(value))
        else:
            parts.append(key + _ENCODER.encode(value))
    return hashlib.sha256(("{" + ",".join(parts) + "}").encode("utf-8")).hexdigest()


def core_hash(row: dict[str, Any], raw: frozenset[str] = frozenset()) -> str:
    return _digest(row, CORE_FIELDS, raw)


def personal_hash(row: dict[str, Any], raw: frozenset[str] = frozenset()) -> str:
    return _digest(row, PERSONAL_FIELDS, raw)


def entry_hash(chain_seq: int, prev_hash: str, core: str, personal: str) -> str:
    return hashlib.sha256(f"{chain_seq}|{prev_hash}|{core}|{personal}".encode()).hexdigest()


def link(row: dict[str, Any], chain_seq: int, prev_hash: str) -> dict[str, Any]:
    """The row with its chain fields filled in, following the entry (chain_seq - 1, prev_hash)."""
    core, personal = core_hash(row), personal_hash(row)
    return {
        **row,
        "chain_seq": chain_seq,
        "prev_hash": prev_hash,
        "core_hash": core,
        "personal_hash": personal,
        "entry_hash": entry_hash(chain_seq, prev_hash, core, personal),
    }
