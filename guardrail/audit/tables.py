"""The audit schema. Plain columns for what analysts filter on, JSON for the rest.

Changed only through Alembic migrations (migrations/); this module is what they are checked against.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

# BigInteger on PostgreSQL, INTEGER (rowid alias, so auto-incrementing) on SQLite.
_Seq = BigInteger().with_variant(Integer(), "sqlite")

audit_events = Table(
    "audit_events",
    metadata,
    Column("seq", _Seq, primary_key=True, autoincrement=True),
    Column("event_id", String(32), nullable=False, unique=True),
    Column("call_id", String(32), nullable=False),
    Column("kind", String(16), nullable=False),  # request | outcome
    Column("created_at", DateTime(timezone=True), nullable=False, index=True),
    Column("schema_version", Integer, nullable=False),
    Column("user_id", String(256), index=True),
    Column("roles", JSON, nullable=False),
    Column("status", String(16), nullable=False),  # pending | allowed | modified | denied | error
    Column("decision", String(8)),  # allow | modify | deny, on outcome events
    Column("flagged", Boolean, nullable=False, default=False),
    Column("rules", JSON, nullable=False),
    Column("policy_name", String(200), nullable=False),
    Column("policy_version", String(64), nullable=False),
    Column("pipeline_class", String(200)),
    Column("model_name", String(1024)),
    Column("privacy_mode", String(16), nullable=False),
    Column("hmac_key_id", String(32)),
    Column("prompts", JSON, nullable=False),
    Column("negative_prompts", JSON, nullable=False),
    Column("params", JSON, nullable=False),
    Column("model", JSON, nullable=False),
    Column("inputs", JSON, nullable=False),
    Column("detail", JSON, nullable=False),  # decision detail, modifications, outputs, durations
    Column("error", Text),
    # The hash chain (see audit/chain.py); erased_at marks erased personal data.
    Column("chain_seq", BigInteger, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("core_hash", String(64), nullable=False),
    Column("personal_hash", String(64), nullable=False),
    Column("entry_hash", String(64), nullable=False),
    Column("erased_at", DateTime(timezone=True)),
    UniqueConstraint("chain_seq", name="uq_audit_events_chain_seq"),
)
Index("ix_audit_events_call_kind", audit_events.c.call_id, audit_events.c.kind)
Index("ix_audit_events_status_time", audit_events.c.status, audit_events.c.created_at)

audit_checkpoints = Table(
    "audit_checkpoints",
    metadata,
    Column("id", _Seq, primary_key=True, autoincrement=True),
    Column("chain_seq", BigInteger, nullable=False, index=True),
    Column("entry_hash", String(64), nullable=False),
    Column("created_at", String(32), nullable=False),  # the canonical text that was signed
    Column("key_id", String(32), nullable=False),
    Column("signature", String(128), nullable=False),
)

quota_usage = Table(
    "quota_usage",
    metadata,
    Column("quota_id", String(128), primary_key=True),
    Column("subject", String(256), primary_key=True),
    Column("window_start", BigInteger, primary_key=True),  # epoch seconds, UTC
    Column("used", Integer, nullable=False),
)

output_fingerprints = Table(
    "output_fingerprints",
    metadata,
    Column("id", _Seq, primary_key=True, autoincrement=True),
    Column("call_id", String(32), nullable=False, index=True),
    Column("image_index", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, index=True),
    Column("algorithm", String(40), nullable=False),  # the screening fingerprint's name and version
    # the fingerprint's four 64-bit hashes (guardrail.screening.hashes.COLUMNS), stored as signed int64
    Column("hash0", BigInteger, nullable=False),
    Column("hash1", BigInteger, nullable=False),
    Column("hash2", BigInteger, nullable=False),
    Column("hash3", BigInteger, nullable=False),
    Column("sha256", String(64), nullable=False),  # of the pixels
    Column("signed_sha256", String(64)),  # of the signed file, when the call was signed
    Column("watermark", BigInteger, index=True),  # the image's watermark token, when it was marked
    Column("watermark_algorithm", String(60)),  # guardrail.marking.watermark.NAME
)
"""The fingerprint registry: every returned image's perceptual fingerprint, written with its call's
outcome, so that a copy whose manifest was stripped still leads back to the call (guardrail trace).
Not personal data: erasure keeps it; retention purges it with the call."""
