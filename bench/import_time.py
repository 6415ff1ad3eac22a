"""`import guardrail` cost, and proof that it imports no heavy package.

Goal (issue 2): <= 150 ms, without torch. Measured as the median over 15 fresh interpreters of
(python -c "import guardrail") minus (python -c "pass"), so interpreter start-up is not counted.
Run: .venv/bin/python bench/import_time.py
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

HEAVY = ("torch", "diffusers", "transformers", "open_clip", "sqlalchemy", "pydantic", "c2pa")


def run(code: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.perf_counter() - start


def main() -> None:
    runs = 15
    base = statistics.median(run("pass") for _ in range(runs))
    pkg = statistics.median(run("import guardrail") for _ in range(runs))
    cli = statistics.median(run("import guardrail.cli.main") for _ in range(runs))
    loaded = subprocess.run(
        [sys.executable, "-c", f"import sys, guardrail; print([m for m in {HEAVY!r} if m in sys.modules])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    print(
        f"import guardrail: {(pkg - base) * 1000:.1f} ms (goal <= 150 ms: {'met' if pkg - base <= 0.150 else 'MISSED'})"
    )
    print(f"heavy packages imported by `import guardrail`: {loaded}")
    print(f"import guardrail.cli.main (what the CLI loads before any command): {(cli - base) * 1000:.1f} ms")


if __name__ == "__main__":
    main()
