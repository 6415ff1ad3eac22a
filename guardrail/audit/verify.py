"""Proving the audit log was not altered: walk the chain, recompute every hash, check the checkpoints.

Each event gets a status; consecutive events with the same status form a range:
  VALID      hashes and links recompute
  REDACTED   personal data was erased (its hash is kept; the event's core and links still verify)
  MISMATCH   a hash does not recompute or an entry does not link to the one before (an edit,
             a reordering, an insertion), or a checkpoint does not match the chain
  GAP        sequence numbers are missing (deleted events)
  TRUNCATED  a checkpoint vouches for events that are no longer there (the newest were deleted)
VALID and REDACTED pass; anything else fails.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from guardrail.audit.chain import GENESIS, core_hash, entry_hash, personal_hash
from guardrail.audit.checkpoints import Checkpoint, verify_checkpoint

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

PASSING = ("VALID", "REDACTED")


@dataclass(frozen=True)
class Range:
    start: int
    end: int
    status: str
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "status": self.status, "reason": self.reason}


@dataclass
class VerificationReport:
    events: int = 0
    ranges: list[Range] = field(default_factory=list)
    checkpoints: int = 0
    checkpoint_problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return all(r.status in PASSING for r in self.ranges) and not self.checkpoint_problems

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "events": self.events,
            "checkpoints": self.checkpoints,
            "ranges": [r.as_dict() for r in self.ranges],
            "checkpoint_problems": self.checkpoint_problems,
            "events_per_second": round(self.events / self.seconds) if self.seconds else None,
        }


def _matches(digest: Any, row: dict[str, Any], raw: frozenset[str], expected: str) -> bool:
    """Whether the hash over the stored JSON text as it is (fast) matches, or else the hash over the
    parsed values re-serialised (rows written by other tools): a real change fails both."""
    if digest(row, raw) == expected:
        return True
    if not raw:
        return False
    parsed = {k: (json.loads(v) if k in raw and v is not None else v) for k, v in row.items()}
    return bool(digest(parsed) == expected)


def verify_rows(
    rows: Iterable[dict[str, Any]], report: VerificationReport, raw: frozenset[str] = frozenset()
) -> dict[int, str]:
    """Check each event in chain order; returns chain_seq -> entry_hash as stored, for the checkpoints.
    Columns named in `raw` hold their JSON text rather than parsed values."""
    stored: dict[int, str] = {}
    expected_seq, previous = 1, GENESIS
    run: tuple[str, str] | None = None  # (status, reason) of the range being extended
    run_start = 0
    for row in rows:
        seq = int(row["chain_seq"])
        report.events += 1
        problems = []
        if row["prev_hash"] != previous:
            problems.append("does not link to the entry before it")
        if not _matches(core_hash, row, raw, row["core_hash"]):
            problems.append("core fields changed")
        erased = row["erased_at"] is not None
        if not erased and not _matches(personal_hash, row, raw, row["personal_hash"]):
            problems.append("personal fields changed")
        if entry_hash(seq, row["prev_hash"], row["core_hash"], row["personal_hash"]) != row["entry_hash"]:
            problems.append("entry hash changed")
        state = ("MISMATCH", "; ".join(problems)) if problems else ("REDACTED" if erased else "VALID", "")
        if state != run or seq != expected_seq:
            if run is not None:
                report.ranges.append(Range(run_start, expected_seq - 1, *run))
            if seq > expected_seq:
                report.ranges.append(Range(expected_seq, seq - 1, "GAP", f"{seq - expected_seq} events missing"))
            run, run_start = state, seq
        stored[seq] = row["entry_hash"]
        expected_seq, previous = seq + 1, row["entry_hash"]
    if run is not None:
        report.ranges.append(Range(run_start, expected_seq - 1, *run))
    return stored


def check_checkpoints(
    checkpoints: list[Checkpoint], public_pem: bytes | None, stored: dict[int, str], report: VerificationReport
) -> None:
    last_seq = max(stored, default=0)
    furthest = last_seq
    for checkpoint in checkpoints:
        report.checkpoints += 1
        if public_pem is not None and not verify_checkpoint(checkpoint, public_pem):
            report.checkpoint_problems.append(f"checkpoint at {checkpoint.chain_seq}: signature does not verify")
            continue
        if checkpoint.chain_seq > last_seq:
            furthest = max(furthest, checkpoint.chain_seq)
        elif checkpoint.chain_seq in stored and stored[checkpoint.chain_seq] != checkpoint.entry_hash:
            seq = checkpoint.chain_seq
            report.checkpoint_problems.append(
                f"checkpoint at {seq}: the chain's entry hash differs (history rewritten)"
            )
            report.ranges.append(Range(seq, seq, "MISMATCH", "differs from a signed checkpoint"))
    if furthest > last_seq:
        report.ranges.append(
            Range(last_seq + 1, furthest, "TRUNCATED", "a checkpoint vouches for events that are gone")
        )
    if checkpoints and public_pem is None:
        report.checkpoint_problems.append("checkpoints were not checked: no public key given")


def verify_log(
    engine: Engine,
    *,
    public_key: bytes | None = None,
    checkpoints: list[Checkpoint] | None = None,
) -> VerificationReport:
    """Verify the whole chain, and the checkpoints stored in the database (or those given, e.g. an
    exported file kept elsewhere). Reads only."""
    import sqlalchemy as sa

    from guardrail.audit.tables import audit_checkpoints, audit_events

    started = time.perf_counter()
    report = VerificationReport()
    with engine.connect() as connection:
        raw = frozenset(c.name for c in audit_events.c if isinstance(c.type, sa.JSON))
        as_text = set(raw) | ({"created_at"} if engine.dialect.name == "sqlite" else set())  # no parsing
        columns = [sa.cast(c, sa.Text).label(c.name) if c.name in as_text else c for c in audit_events.c]
        query = sa.select(*columns).order_by(audit_events.c.chain_seq)
        if engine.dialect.name == "sqlite":
            stored = verify_rows(_sqlite_rows(connection, query), report, raw)
        else:
            result = connection.execution_options(yield_per=5000).execute(query)
            keys = list(result.keys())
            stored = verify_rows((dict(zip(keys, row, strict=True)) for row in result), report, raw)
        if checkpoints is None:
            rows = connection.execute(sa.select(audit_checkpoints).order_by(audit_checkpoints.c.id)).mappings()
            checkpoints = [Checkpoint(**{k: row[k] for k in Checkpoint.__dataclass_fields__}) for row in rows]
    check_checkpoints(checkpoints, public_key, stored, report)
    report.ranges.sort(key=lambda r: (r.start, r.status))
    report.seconds = time.perf_counter() - started
    return report


def _sqlite_rows(connection: Any, query: Any) -> Iterator[dict[str, Any]]:
    """Rows of the SQLAlchemy-compiled query straight from the driver: every value is already text
    or a number except `flagged`, which SQLite stores as 0/1 and the chain hashed as a bool."""
    cursor = connection.connection.driver_connection.cursor()
    try:
        cursor.execute(str(query.compile(dialect=connection.dialect)))
        keys = [d[0] for d in cursor.description]
        while batch := cursor.fetchmany(5000):
            for values in batch:
                row = dict(zip(keys, values, strict=True))
                row["flagged"] = bool(row["flagged"])
                yield row
    finally:
        cursor.close()
