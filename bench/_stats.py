"""Small helpers shared by the benchmarks."""

from __future__ import annotations

import statistics


def percentiles(samples_ns: list[int]) -> dict[str, float]:
    """p50 / p99 / mean in microseconds."""
    ordered = sorted(samples_ns)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1000  # noqa: E731
    return {"p50_us": pick(0.50), "p99_us": pick(0.99), "mean_us": statistics.fmean(ordered) / 1000}
