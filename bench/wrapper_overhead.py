"""What guardrail adds to a call: a no-op generator and the tiny diffusers pipeline, bare vs guarded.

Goal (issue 2): <= 1 ms added per call with a no-op generator on SQLite with durable commits.
Default durability "outcome": the outcome event is fsynced (synchronous=FULL) before images are
returned, the request event before it is crash-safe (synchronous=NORMAL) and made power-safe by
that fsync. "full" fsyncs both events; it is measured too, for comparison.
Run: .venv/bin/python bench/wrapper_overhead.py
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).parent))

from _stats import percentiles
from PIL import Image

import guardrail

REPO = Path(__file__).resolve().parents[1]
NEGATIVE = "nsfw, nudity, gore"


def timed(fn, n: int) -> list[int]:
    samples = []
    for i in range(n):
        start = time.perf_counter_ns()
        fn(i)
        samples.append(time.perf_counter_ns() - start)
    return samples


def main() -> None:
    image = Image.new("RGB", (64, 64))

    def noop(prompt: str, negative_prompt: str = "", num_inference_steps: int = 20) -> list:
        return [image]

    def nothing(prompt: str, negative_prompt: str = "", num_inference_steps: int = 20) -> list:
        return []

    with tempfile.TemporaryDirectory() as folder:
        key = guardrail.HmacKey(os.urandom(32))
        prompt = "a watercolor fox in a snowy forest, detailed, soft light"
        n = 1000
        bare = percentiles(timed(lambda i: noop(prompt, negative_prompt=NEGATIVE), n))
        print(f"no-op generator, SQLite WAL, {n} calls; bare call mean {bare['mean_us']:.1f} us")
        # the wrapper itself (policy, audit events) with a generator that returns no image, then with one
        # 64-px image, which adds the per-image marks (its fingerprint, computed and written to the registry)
        for durability, generator in (("outcome", nothing), ("outcome", noop), ("full", noop)):
            guard = guardrail.Guard(
                policy=REPO / "policies" / "default.yaml",
                database=f"{folder}/audit-{durability}-{generator.__name__}.db",
                hmac_key=key,
                durability=durability,
            )
            guarded = guard.wrap(generator, model="noop")
            for _ in range(50):
                guarded(prompt, negative_prompt=NEGATIVE, user="bench")
            wrapped = percentiles(timed(lambda i, g=guarded: g(prompt, negative_prompt=NEGATIVE, user="bench"), n))
            added = (wrapped["mean_us"] - bare["mean_us"]) / 1000
            verdict = "met" if added <= 1 else "MISSED"
            images = "one image" if generator is noop else "no image "
            print(
                f"  durability={durability:<8} {images} added mean {added:.3f} ms"
                f"  p50 {wrapped['p50_us'] / 1000:.3f} ms  p99 {wrapped['p99_us'] / 1000:.3f} ms"
                f"  (goal <= 1 ms: {verdict})"
            )
            guard.close()
        guard = guardrail.Guard(policy=REPO / "policies" / "default.yaml", database=f"{folder}/audit.db", hmac_key=key)

        from guardrail.testing import tiny_pipeline

        pipe = tiny_pipeline("txt2img")
        pipe.set_progress_bar_config(disable=True)
        guarded_pipe = guard.wrap(pipe, model="tiny-sd")
        kwargs = {"negative_prompt": NEGATIVE, "num_inference_steps": 2, "height": 64, "width": 64}
        for _ in range(5):
            pipe(prompt, **kwargs)
            guarded_pipe(prompt, **kwargs)
        n = 40
        bare_samples, guarded_samples = [], []
        for _ in range(n):  # alternate, so drifts in CPU speed fall on both alike
            bare_samples += timed(lambda i: pipe(prompt, **kwargs), 1)
            guarded_samples += timed(lambda i: guarded_pipe(prompt, **kwargs), 1)
        bare_ms = statistics.median(bare_samples) / 1e6
        guarded_ms = statistics.median(guarded_samples) / 1e6
        print(f"tiny SD pipeline (64 px, 2 steps, CPU), {n} calls each, alternating, medians")
        print(f"  bare    {bare_ms:8.2f} ms")
        print(f"  guarded {guarded_ms:8.2f} ms  ratio {guarded_ms / bare_ms:.3f}")
        guard.close()


if __name__ == "__main__":
    main()
