"""The report page on a large log: time and peak memory to write it, and its size, on SQLite and on
PostgreSQL, with the chain verification (what `audit report` does by default) timed apart.

Goal (issue 17): 1M events (500k calls) in <= 10 s and <= 500 MB, HTML <= 2 MB. The log is filled
once per database (about 2 minutes for 1M events on SQLite). Each figure is measured in a fresh
process, so the peak resident memory is the report's own.
Run: .venv/bin/python bench/report.py [--calls 500000] [--skip-postgres]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

POSTGRES = os.environ.get("GUARDRAIL_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def measure(url: str, verify: bool) -> dict[str, float]:
    """In this (fresh) process: write the page as `audit report` does, return seconds, peak RSS, size."""
    from guardrail.audit.store import create_engine
    from guardrail.report.page import report_page

    engine = create_engine(url)
    started = time.perf_counter()
    page = report_page(engine, verify=verify)
    total = time.perf_counter() - started
    engine.dispose()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # the verifying processes
    return {"total_s": total, "peak_mb": max(peak, children), "kb": len(page) / 1024}


def run(label: str, url: str, calls: int) -> None:
    from guardrail.testing import fill_synthetic_log

    started = time.perf_counter()
    fill_synthetic_log(url, calls, days=90)
    print(f"{label}: {2 * calls:,} events filled in {time.perf_counter() - started:.0f} s")
    if url.startswith("postgresql"):  # the planner's statistics, as autovacuum keeps them in production
        import sqlalchemy as sa

        with sa.create_engine(url, isolation_level="AUTOCOMMIT").connect() as connection:
            connection.exec_driver_sql("ANALYZE audit_events")
    for verify in (False, True):
        out = subprocess.run(
            [sys.executable, __file__, "--measure", url, *(["--verify"] if verify else [])],
            capture_output=True,
            text=True,
            check=True,
        )
        figures = json.loads(out.stdout.strip().splitlines()[-1])
        what = "with the chain verified" if verify else "--no-verify"
        print(
            f"  {what:<24} {figures['total_s']:6.1f} s, peak {figures['peak_mb']:.0f} MB, page {figures['kb']:.0f} KB"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=500_000)
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--measure")
    parser.add_argument("--verify", action="store_true")
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.verify)))
        return
    if not args.skip_sqlite:
        with tempfile.TemporaryDirectory() as folder:
            run("SQLite", f"sqlite:///{Path(folder) / 'audit.db'}", args.calls)
    if not args.skip_postgres:
        import sqlalchemy as sa

        engine = sa.create_engine(POSTGRES, isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.execute(sa.text("DROP DATABASE IF EXISTS guardrail_bench_report"))
            connection.execute(sa.text("CREATE DATABASE guardrail_bench_report"))
        try:
            run("PostgreSQL", POSTGRES.rsplit("/", 1)[0] + "/guardrail_bench_report", args.calls)
        finally:
            with engine.connect() as connection:
                connection.execute(sa.text("DROP DATABASE IF EXISTS guardrail_bench_report WITH (FORCE)"))
            engine.dispose()


if __name__ == "__main__":
    main()
