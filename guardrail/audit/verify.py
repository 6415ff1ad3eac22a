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
import logging
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from guardrail.audit.chain import GENESIS, canonical_json, core_hash, entry_hash, personal_hash
from guardrail.audit.checkpoints import Checkpoint, verify_checkpoint

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

PASSING = ("VALID", "REDACTED")
log = logging.getLogger("guardrail.audit")


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
    """Checkpoints found (in the database, or given)."""
    checkpoints_verified: int = 0
    """Of those, how many have a valid signature and agree with the chain (0 without a public key)."""
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
            "checkpoints_verified": self.checkpoints_verified,
            "ranges": [r.as_dict() for r in self.ranges],
            "checkpoint_problems": self.checkpoint_problems,
            "events_per_second": round(self.events / self.seconds) if self.seconds else None,
        }


def _matches(digest: Any, row: dict[str, Any], raw: frozenset[str], expected: str) -> bool:
    """Whether the hash over the stored JSON text, byte for byte, matches. The stored text is what every
    reader sees (SQLite's json_extract, psql, a BI tool), so it is what must be proven: JSON that parses
    to the hashed values but is not the canonical text (a duplicate key that json_extract reads first
    and Python last, other spacing or key order) does not verify."""
    return bool(digest(row, raw) == expected)


def _not_canonical(row: dict[str, Any], raw: frozenset[str]) -> list[str]:
    """The JSON columns whose stored text is not the one canonical serialisation of what it holds."""
    found = []
    for name in sorted(raw):
        text = row.get(name)
        if text is None:
            continue
        try:
            canonical = canonical_json(json.loads(text)) == text and not _duplicate_keys(text)
        except ValueError:
            canonical = False
        if not canonical:
            found.append(name)
    return found


def _duplicate_keys(text: str) -> bool:
    seen_duplicate = False

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        nonlocal seen_duplicate
        seen_duplicate |= len({key for key, _ in items}) != len(items)
        return dict(items)

    json.loads(text, object_pairs_hook=pairs)
    return seen_duplicate


@dataclass
class Chunk:
    """What verifying one stretch of the chain found, for stitching stretches checked apart."""

    ranges: list[Range] = field(default_factory=list)
    events: int = 0
    first: tuple[int, str] | None = None
    """(chain_seq, prev_hash) of the stretch's first entry."""
    last: tuple[int, str] | None = None
    """(chain_seq, entry_hash) of its last entry."""
    hashes: dict[int, str] = field(default_factory=dict)
    """Entry hashes at the sequence numbers asked for (the checkpoints')."""


def verify_rows(
    rows: Iterable[dict[str, Any]],
    raw: frozenset[str] = frozenset(),
    *,
    start: int = 1,
    previous: str | None = GENESIS,
    wanted: frozenset[int] = frozenset(),
) -> Chunk:
    """Check each event of a stretch in chain order, from sequence `start`; `previous` is the entry
    hash before it (None: unknown, the caller checks that link). Columns in `raw` hold JSON text."""
    chunk = Chunk()
    expected_seq = start
    run: tuple[str, str] | None = None  # (status, reason) of the range being extended
    run_start = 0
    for row in rows:
        seq = int(row["chain_seq"])
        chunk.events += 1
        if chunk.first is None:
            chunk.first = (seq, row["prev_hash"])
        problems = []
        if previous is not None and row["prev_hash"] != previous:
            problems.append("does not link to the entry before it")
        if not _matches(core_hash, row, raw, row["core_hash"]):
            problems.append("core fields changed")
        erased = row["erased_at"] is not None
        if not erased and not _matches(personal_hash, row, raw, row["personal_hash"]):
            problems.append("personal fields changed")
        if entry_hash(seq, row["prev_hash"], row["core_hash"], row["personal_hash"]) != row["entry_hash"]:
            problems.append("entry hash changed")
        if problems and raw:
            odd = _not_canonical(row, raw)
            if odd:
                problems.append(f"stored JSON not in canonical form ({', '.join(odd)})")
        state = ("MISMATCH", "; ".join(problems)) if problems else ("REDACTED" if erased else "VALID", "")
        if state != run or seq != expected_seq:
            if run is not None:
                chunk.ranges.append(Range(run_start, expected_seq - 1, *run))
            if seq > expected_seq:
                chunk.ranges.append(Range(expected_seq, seq - 1, "GAP", f"{seq - expected_seq} events missing"))
            run, run_start = state, seq
        if seq in wanted:
            chunk.hashes[seq] = row["entry_hash"]
        expected_seq, previous = seq + 1, row["entry_hash"]
        chunk.last = (seq, previous)
    if run is not None:
        chunk.ranges.append(Range(run_start, expected_seq - 1, *run))
    return chunk


def check_checkpoints(
    checkpoints: list[Checkpoint],
    public_pem: bytes | None,
    stored: dict[int, str],
    last_seq: int,
    report: VerificationReport,
) -> None:
    """Signatures, agreement with the chain's entry hashes, and events a checkpoint vouches for
    beyond the chain's end (TRUNCATED)."""
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
            continue
        if public_pem is not None:
            report.checkpoints_verified += 1
    if furthest > last_seq:
        report.ranges.append(
            Range(last_seq + 1, furthest, "TRUNCATED", "a checkpoint vouches for events that are gone")
        )
    if checkpoints and public_pem is None:
        report.checkpoint_problems.append("checkpoints were not checked: no public key given")


PARALLEL_MIN_EVENTS = 200_000
"""Below this, one process is faster than starting more."""


def verify_log(
    engine: Engine,
    *,
    public_key: bytes | None = None,
    checkpoints: list[Checkpoint] | None = None,
    workers: int | None = None,
    checkpoint_interval_s: float | None = None,
) -> VerificationReport:
    """Verify the whole chain, and the checkpoints stored in the database (or those given, e.g. an
    exported file kept elsewhere). Large logs are split into stretches verified by `workers`
    processes (default: one per CPU from PARALLEL_MIN_EVENTS events on) and stitched. Reads only.

    `checkpoint_interval_s`: the log is written with a checkpoint key that signs at least this often;
    a log older than that with no checkpoint at all fails (checkpoints deleted, or the key not used)."""
    import sqlalchemy as sa

    from guardrail.audit.query import checkpoints as stored_checkpoints
    from guardrail.audit.tables import audit_events as ev

    started = time.perf_counter()
    with engine.connect() as connection:
        high, count, oldest = connection.execute(
            sa.select(sa.func.max(ev.c.chain_seq), sa.func.count(), sa.func.min(ev.c.created_at))
        ).one()
    if checkpoints is None:
        checkpoints = [Checkpoint(**row) for row in stored_checkpoints(engine)]
    wanted = frozenset(c.chain_seq for c in checkpoints)
    if workers is None:
        workers = (os.cpu_count() or 1) if count >= PARALLEL_MIN_EVENTS else 1
    bounds = _stretches(1, int(high or 0), max(1, workers))
    if len(bounds) > 1:
        from concurrent.futures import ProcessPoolExecutor
        from concurrent.futures.process import BrokenProcessPool
        from multiprocessing import get_context

        url = engine.url.render_as_string(hide_password=False)
        try:
            with ProcessPoolExecutor(len(bounds), mp_context=get_context("spawn")) as pool:
                chunks = list(pool.map(_verify_stretch, [url] * len(bounds), bounds, [wanted] * len(bounds)))
        except BrokenProcessPool:  # e.g. a script without `if __name__ == "__main__":` cannot spawn
            log.warning("parallel verification unavailable; verifying in one process")
            chunks = [_verify_stretch(engine, (1, int(high)), wanted)]
    else:
        chunks = [_verify_stretch(engine, bounds[0], wanted)] if bounds else []
    report = _stitch(chunks)
    stored = {seq: h for chunk in chunks for seq, h in chunk.hashes.items()}
    check_checkpoints(checkpoints, public_key, stored, int(high or 0), report)
    if checkpoint_interval_s is not None and count and not checkpoints:
        age = (datetime.now(timezone.utc) - _utc(oldest)).total_seconds()
        if age > checkpoint_interval_s:
            report.checkpoint_problems.append(
                f"no checkpoint, although checkpoints are signed at least every {checkpoint_interval_s:g} s and "
                f"the log's oldest event is {age:.0f} s old: checkpoints were deleted, or events were written "
                "without the checkpoint key"
            )
    report.ranges.sort(key=lambda r: (r.start, r.status))
    report.seconds = time.perf_counter() - started
    return report


def _utc(moment: Any) -> datetime:
    value = datetime.fromisoformat(moment) if isinstance(moment, str) else moment
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value


def _stretches(low: int, high: int, parts: int) -> list[tuple[int, int]]:
    if high < low:
        return []
    size = -(-(high - low + 1) // parts)
    return [(start, min(high, start + size - 1)) for start in range(low, high + 1, size)]


def _verify_stretch(engine_or_url: Any, bounds: tuple[int, int], wanted: frozenset[int]) -> Chunk:
    """Verify the events with chain_seq in `bounds` (run in a worker process for large logs)."""
    import sqlalchemy as sa

    from guardrail.audit.store import create_engine
    from guardrail.audit.tables import audit_events as ev

    engine = create_engine(engine_or_url) if isinstance(engine_or_url, str) else engine_or_url
    low, high = bounds
    raw = frozenset(c.name for c in ev.c if isinstance(c.type, sa.JSON))
    as_text = set(raw) | ({"created_at"} if engine.dialect.name == "sqlite" else set())  # no parsing
    columns = [sa.cast(c, sa.Text).label(c.name) if c.name in as_text else c for c in ev.c]
    query = sa.select(*columns).where(ev.c.chain_seq.between(low, high)).order_by(ev.c.chain_seq)
    with engine.connect() as connection:
        chunk = verify_rows(
            _driver_rows(connection, query), raw, start=low, previous=GENESIS if low == 1 else None, wanted=wanted
        )
    if chunk.last is None or chunk.last[0] < high:
        after = chunk.last[0] + 1 if chunk.last else low
        chunk.ranges.append(Range(after, high, "GAP", f"{high - after + 1} events missing"))
    if isinstance(engine_or_url, str):
        engine.dispose()
    return chunk


def _stitch(chunks: list[Chunk]) -> VerificationReport:
    """One report from stretches: check the links between them and merge ranges that meet."""
    report = VerificationReport()
    for index, chunk in enumerate(chunks):
        report.events += chunk.events
        ranges = list(chunk.ranges)
        before = chunks[index - 1].last if index else None
        if index and chunk.first is not None and before is not None and chunk.first[1] != before[1]:
            seq = chunk.first[0]
            ranges.append(Range(seq, seq, "MISMATCH", "does not link to the entry before it"))
        for item in sorted(ranges, key=lambda r: r.start):
            last = report.ranges[-1] if report.ranges else None
            if last and (last.status, last.reason) == (item.status, item.reason) and last.end + 1 == item.start:
                report.ranges[-1] = Range(last.start, item.end, item.status, item.reason)
            else:
                report.ranges.append(item)
    return report


def _driver_rows(connection: Any, query: Any) -> Iterator[dict[str, Any]]:
    """Rows of the SQLAlchemy-compiled query straight from the driver, in batches (a server-side
    cursor on PostgreSQL): SQLAlchemy's per-row processing was a third of the time, and every value
    is text or a number already, except `flagged`, which SQLite stores as 0/1 and the chain hashed
    as a bool."""
    driver = connection.connection.driver_connection
    server_side = connection.dialect.name == "postgresql"
    cursor = driver.cursor(name="guardrail_verify") if server_side else driver.cursor()
    try:
        cursor.execute(str(query.compile(dialect=connection.dialect, compile_kwargs={"literal_binds": True})))
        keys = [d[0] for d in cursor.description]
        while batch := cursor.fetchmany(5000):
            for values in batch:
                row = dict(zip(keys, values, strict=True))
                row["flagged"] = bool(row["flagged"])
                yield row
    finally:
        cursor.close()
