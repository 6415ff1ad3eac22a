"""The audit log under load: chained writes per second, query latency on a large log, verification speed.

Goals (issue 4): query latency with 1M events on indexed filters <= 50 ms; verification >= 50k
events/s; events per second for 1, 4 and 16 writer threads on SQLite and PostgreSQL (reported).
Run: .venv/bin/python bench/audit_log.py [--events 1000000] [--skip-postgres] [--skip-sqlite]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sqlalchemy as sa

from guardrail.audit.events import new_id, outcome_event, request_event
from guardrail.audit.query import CallFilter, query_calls
from guardrail.audit.store import AuditStore, create_engine
from guardrail.audit.tables import audit_events
from guardrail.audit.verify import verify_log
from guardrail.policy.decision import Decision, FiredRule
from guardrail.privacy import HmacKey, PromptPrivacy
from guardrail.request import CallContext, GenerationRequest, ModelIdentity
from guardrail.testing import append_chained

PRIVACY = PromptPrivacy("hmac", HmacKey(os.urandom(32)))
USERS = [f"user{i:04d}" for i in range(2000)]
MODEL = ModelIdentity(pipeline_class="StableDiffusionPipeline", name_or_path="/models/sd15")


def events_for(i: int, created_at: datetime) -> list[dict]:
    request = GenerationRequest(
        prompts=(f"a watercolor fox number {i}",), negative_prompts=("blurry",), width=512, height=512, steps=30,
        guidance=7.5, model=MODEL, user=USERS[i % len(USERS)], roles=("artist",),
    )  # fmt: skip
    ctx = CallContext(new_id(), request, "default", "v" * 64, PRIVACY)
    denied = i % 10 == 0
    decision = Decision("deny", (FiredRule("no-gore", "deny", "no"),)) if denied else Decision("allow")
    rows = [
        request_event(ctx).row(),
        outcome_event(
            ctx, decision=decision, outputs=[] if denied else [{"sha256": "a" * 64}], durations_ms={"generate": 1.0}
        ).row(),
    ]
    for row in rows:
        row["created_at"] = created_at
    return rows


def fill(url: str, count: int) -> None:
    """Write `count` events (count/2 calls) with a valid chain, in batches: a log of months."""
    start = datetime.now(timezone.utc) - timedelta(days=90)
    step = timedelta(days=90) / max(1, count)
    begun = time.perf_counter()
    written = append_chained(url, (row for i in range(count // 2) for row in events_for(i, start + step * (2 * i))))
    print(f"  filled {written:,} events in {time.perf_counter() - begun:.0f} s")


def write_rate(url: str, threads: int, seconds: float = 4.0) -> float:
    store = AuditStore(url)
    stop = time.monotonic() + seconds
    counts = [0] * threads

    def work(n: int) -> None:
        while time.monotonic() < stop:
            ctx = CallContext(
                new_id(), GenerationRequest(prompts=("a fox",), user=f"w{n}"), "default", "v" * 64, PRIVACY
            )
            store.write(request_event(ctx))
            counts[n] += 1

    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    store.close()
    return sum(counts) / seconds


def query_latency(url: str) -> None:
    engine = sa.create_engine(url)
    now = datetime.now(timezone.utc)
    filters = {
        "user (indexed)": CallFilter(user="user0042"),
        "time range, 1 day (indexed)": CallFilter(since=now - timedelta(days=31), until=now - timedelta(days=30)),
        "status denied (indexed)": CallFilter(status="denied"),
        "user + time range": CallFilter(user="user0042", since=now - timedelta(days=30)),
        "rule id (JSON, not indexed)": CallFilter(rule="no-gore"),
        "model wildcard (not indexed)": CallFilter(model="/models/*"),
    }
    for label, where in filters.items():
        query_calls(engine, where)
        samples = []
        for _ in range(5):
            begun = time.perf_counter()
            found = query_calls(engine, where)
            samples.append((time.perf_counter() - begun) * 1000)
        print(f"    {label:<32} {statistics.median(samples):8.1f} ms  ({len(found)} calls, limit 100)")
    engine.dispose()


def run(label: str, url: str, events: int) -> None:
    print(f"{label}")
    for threads in (1, 4, 16):
        print(f"  {threads:>2} writer threads: {write_rate(url, threads):8.0f} chained events/s")
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.execute(audit_events.delete())
    engine.dispose()
    fill(url, events)
    if url.startswith("postgresql"):  # what autovacuum does soon after a bulk load; SQLite gets no statistics
        with sa.create_engine(url, isolation_level="AUTOCOMMIT").connect() as connection:
            connection.exec_driver_sql("ANALYZE audit_events")
    print(f"  query latency with {events:,} events (median of 5):")
    query_latency(url)
    report = verify_log(create_engine(url))
    rate = report.events / report.seconds
    print(f"  verification: {report.events:,} events in {report.seconds:.1f} s = {rate:,.0f} events/s, ok={report.ok}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--skip-sqlite", action="store_true")
    args = parser.parse_args()
    if not args.skip_sqlite:
        with tempfile.TemporaryDirectory() as folder:
            run("SQLite (WAL)", f"sqlite:///{folder}/bench.db", args.events)
    if args.skip_postgres:
        return
    admin_url = os.environ.get("GUARDRAIL_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"guardrail_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        run("PostgreSQL", admin.url.set(database=name).render_as_string(hide_password=False), args.events)
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
