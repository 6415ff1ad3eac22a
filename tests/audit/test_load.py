"""The log stays complete and verifiable under concurrency and when a writer is killed."""

import contextlib
import multiprocessing
import os
import signal
import threading
import time

import sqlalchemy as sa
from PIL import Image

import guardrail
from guardrail.audit.query import CallFilter, query_calls
from guardrail.audit.store import create_engine
from guardrail.audit.tables import audit_events
from guardrail.audit.verify import verify_log

POLICY = "name: load\nprivacy: {prompts: redacted}\nrules: [{id: no-gore, effect: deny, prompt: {terms: [gore]}}]\n"


def _writer(url: str, threads: int, calls: int) -> None:
    guard = guardrail.Guard(policy=guardrail.parse_policy(POLICY), database=url)
    pipe = guard.wrap(lambda prompt: [Image.new("RGB", (4, 4))])

    def work(n: int) -> None:
        for i in range(calls):
            with contextlib.suppress(guardrail.PolicyViolation):
                pipe("gore" if i % 5 == 0 else f"cat {n} {i}", user=f"p{os.getpid()}-t{n}")

    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    guard.close()


def test_processes_and_threads_write_one_contiguous_chain(database: str) -> None:
    guardrail.Guard(policy=guardrail.parse_policy(POLICY), database=database).close()  # migrate once
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_writer, args=(database, 4, 10)) for _ in range(3)]
    for p in processes:
        p.start()
    for p in processes:
        p.join(timeout=180)
        assert p.exitcode == 0
    engine = create_engine(database)
    report = verify_log(engine)
    with engine.connect() as connection:
        rows = connection.execute(
            sa.select(audit_events.c.call_id, audit_events.c.kind, audit_events.c.chain_seq)
        ).all()
    engine.dispose()
    assert report.ok and [(r.start, r.end, r.status) for r in report.ranges] == [(1, 240, "VALID")]
    per_call: dict[str, list[str]] = {}
    for call_id, kind, _seq in rows:
        per_call.setdefault(call_id, []).append(kind)
    assert len(per_call) == 120
    assert all(sorted(kinds) == ["outcome", "request"] for kinds in per_call.values())


def _killed_writer(url: str) -> None:
    guard = guardrail.Guard(policy=guardrail.parse_policy(POLICY), database=url)
    fast = guard.wrap(lambda prompt: [Image.new("RGB", (4, 4))])
    slow = guard.wrap(lambda prompt: time.sleep(60) or [])

    def busy() -> None:
        while True:
            fast("a cat", user="busy")

    threading.Thread(target=busy, daemon=True).start()
    slow("a slow cat", user="slow")


def test_a_writer_killed_mid_call_leaves_a_verifiable_chain(database: str) -> None:
    guardrail.Guard(policy=guardrail.parse_policy(POLICY), database=database).close()
    process = multiprocessing.get_context("spawn").Process(target=_killed_writer, args=(database,))
    process.start()
    engine = create_engine(database)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # wait until the slow call is logged and many fast ones too
        with engine.connect() as connection:
            slow = connection.execute(sa.select(sa.func.count()).where(audit_events.c.user_id == "slow")).scalar()
            total = connection.execute(sa.select(sa.func.count()).select_from(audit_events)).scalar()
        if slow and total > 100:
            break
        time.sleep(0.05)
    else:
        os.kill(process.pid, signal.SIGKILL)
        raise AssertionError(f"after 60 s the writer had logged {total} events (slow call logged: {bool(slow)})")
    os.kill(process.pid, signal.SIGKILL)
    process.join(timeout=30)
    assert process.exitcode == -signal.SIGKILL
    report = verify_log(engine)
    pending = query_calls(engine, CallFilter(status="pending", limit=None))
    engine.dispose()
    assert report.ok, report.as_dict()
    assert report.events > 100
    assert "slow" in {call.user for call in pending}
