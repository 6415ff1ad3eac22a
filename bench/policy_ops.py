"""Policy operations: hot-reload latency and the cost of quota checks per call.

Goals (issue 5): report reload latency (edit to first call under the new policy); quota check
cost per call on SQLite and PostgreSQL within the foundation's 1 ms wrapper overhead.
Run: .venv/bin/python bench/policy_ops.py   (PostgreSQL: GUARDRAIL_BENCH_POSTGRES_URL or 127.0.0.1:5432)
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _stats import percentiles
from PIL import Image

import guardrail
from guardrail.policy.load import load_policy

REPO = Path(__file__).resolve().parents[1]
IMAGE = Image.new("RGB", (8, 8))
QUOTAS = """
quotas:
  - {id: user-hourly, per: user, window: 1h, images: 100000000}
  - {id: team-daily, per: role, window: 1d, images: 100000000}
"""


def noop(prompt: str, negative_prompt: str = "") -> list:
    return [IMAGE]


def per_call_us(pipe, n: int, **kwargs) -> float:
    samples = []
    for i in range(n):
        start = time.perf_counter_ns()
        pipe(f"a fox {i}", negative_prompt="nsfw, nudity, gore", **kwargs)
        samples.append(time.perf_counter_ns() - start)
    return percentiles(samples)["mean_us"]


def reload_latency(folder: Path) -> None:
    policy = folder / "live.yaml"
    text = (REPO / "policies" / "default.yaml").read_text()
    policy.write_text(text)
    start = time.perf_counter()
    for _ in range(20):
        load_policy(policy)
    load_ms = (time.perf_counter() - start) / 20 * 1000
    print(f"hot reload: parsing, validating and compiling the default policy takes {load_ms:.1f} ms")
    for interval in (0.0, 0.25, 1.0):
        guard = guardrail.Guard(
            policy=policy, database=f"{folder}/reload-{interval}.db", hmac_key=guardrail.HmacKey(os.urandom(32)),
            reload=True, reload_interval_s=interval,
        )  # fmt: skip
        pipe = guard.wrap(noop)
        latencies = []
        for round_ in range(5):
            pipe("warm up")
            before = guard.policy_version
            policy.write_text(text.replace("name: default", f"name: edit-{interval}-{round_}"))
            edited = time.perf_counter()
            while pipe("a fox", negative_prompt="nsfw, nudity, gore").governance.policy_version == before:
                time.sleep(0.001)  # a busy service calls every millisecond
            latencies.append((time.perf_counter() - edited) * 1000)
        guard.close()
        median, worst = statistics.median(latencies), max(latencies)
        print(f"  interval {interval:<4} s: edit -> first call under the new policy {median:.1f} ms (max {worst:.1f})")


def quota_cost(folder: Path) -> None:
    plain = load_policy(REPO / "policies" / "default.yaml")
    with_quotas = guardrail.parse_policy((REPO / "policies" / "default.yaml").read_text() + QUOTAS)
    pg = os.environ.get("GUARDRAIL_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    databases = {"sqlite": f"sqlite:///{folder}/quota.db"}
    try:
        import sqlalchemy as sa

        admin = sa.create_engine(pg, isolation_level="AUTOCOMMIT")
        name = f"guardrail_bench_{uuid.uuid4().hex[:8]}"
        with admin.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
        databases["postgresql"] = admin.url.set(database=name).render_as_string(hide_password=False)
    except Exception as exc:  # the figure is reported as missing, never invented
        print(f"PostgreSQL unavailable ({exc}); its figures are skipped")
        admin = None
    key = guardrail.HmacKey(os.urandom(32))
    print("quota check cost per call (no-op generator, two quotas: per user and per role)")
    for label, url in databases.items():
        costs = []
        for policy in (plain, with_quotas):
            with guardrail.Guard(policy=policy, database=url, hmac_key=key) as guard:
                pipe = guard.wrap(noop)
                per_call_us(pipe, 50, user="bench", roles=["team"])
                costs.append(per_call_us(pipe, 500, user="bench", roles=["team"]))
        added = (costs[1] - costs[0]) / 1000
        without, with_ = costs[0] / 1000, costs[1] / 1000
        print(
            f"  {label:<10} without quotas {without:.3f} ms/call, with {with_:.3f} ms/call: quotas add {added:.3f} ms"
        )
    if admin is not None:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        reload_latency(Path(folder))
        quota_cost(Path(folder))


if __name__ == "__main__":
    main()
