"""Several worker processes, one PostgreSQL audit log and one quota: each worker has its own Guard (a
Guard, like a C2PA signer, is made per process), all write to the same hash chain, and the quota is
counted across them, so five images an hour means five, whichever worker serves the call. Then the
log is verified. Needs a PostgreSQL server (`make test` starts one on 127.0.0.1:5432); the URL comes
from GUARDRAIL_EXAMPLE_POSTGRES_URL, and the example uses a database of its own, made afresh.

    python examples/multi_worker_postgres.py
"""

from __future__ import annotations

import multiprocessing
import os
from collections import Counter

from PIL import Image

import guardrail

SERVER = os.environ.get("GUARDRAIL_EXAMPLE_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
DATABASE = SERVER.rsplit("/", 1)[0] + "/guardrail_example"
POLICY = """
name: shared-quota
privacy: {prompts: plaintext}
quotas:
  - {id: five-an-hour, per: user, window: 1h, images: 5, message: "five images an hour"}
"""
WORKERS, CALLS_EACH = 4, 3


def worker(number: int) -> list[str]:
    """One worker process: its own Guard on the shared database; alice asks for CALLS_EACH images."""
    outcomes = []
    with guardrail.Guard(policy=guardrail.parse_policy(POLICY), database=DATABASE) as guard:
        pipe = guard.wrap(lambda prompt: [Image.new("RGB", (64, 64), "white")], model=f"worker-{number}")
        for call in range(CALLS_EACH):
            try:
                pipe(f"a fox, worker {number} call {call}", user="alice")
                outcomes.append("allowed")
            except guardrail.PolicyViolation as denied:
                outcomes.append(f"denied by {', '.join(denied.decision.rule_ids)}")
    return outcomes


def fresh_database() -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(SERVER, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(sa.text("DROP DATABASE IF EXISTS guardrail_example WITH (FORCE)"))
        connection.execute(sa.text("CREATE DATABASE guardrail_example"))
    engine.dispose()
    guardrail.Guard(policy=guardrail.parse_policy(POLICY), database=DATABASE).close()  # the schema, once


def main() -> None:
    fresh_database()
    with multiprocessing.get_context("spawn").Pool(WORKERS) as pool:
        outcomes = [o for per_worker in pool.map(worker, range(WORKERS)) for o in per_worker]
    print(f"{WORKERS} workers x {CALLS_EACH} calls for alice: {dict(Counter(outcomes))}")
    from guardrail.audit.store import create_engine

    engine = create_engine(DATABASE)
    report = guardrail.verify_log(engine)
    calls = guardrail.query_calls(engine, guardrail.CallFilter(limit=None))
    print(f"one chain of {report.events} events from {len({c.model for c in calls})} workers: verified {report.ok}")
    engine.dispose()


if __name__ == "__main__":
    main()
