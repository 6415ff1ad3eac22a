"""Early abort: what stopping a blocked call at a latent preview saves, and what looking costs an
allowed one. A real diffusers pipeline (tiny, random weights, on this CPU) runs 30 steps of 64 px.
The allowed calls are classified by NudeNet (when its extra is installed; nothing is found on the
noise of random weights); the blocked ones by a classifier that always blocks, once after the last
step (no preview) and once at the preview, which stops the pipeline there.

On a GPU the steps dominate even more, so the saving approaches the share of steps not run, plus the
VAE decode: about 1 - at. Run: .venv/bin/python bench/early_abort.py [--steps 30] [--at 0.3]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).parent))

import torch
from _stats import median_ms

import guardrail
from guardrail.testing import tiny_pipeline


def timed(fn: Any, repeat: int) -> float:
    fn()  # warm up: the first call loads and compiles what later ones reuse
    return median_ms(fn, repeat)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--at", type=float, default=0.3)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    from guardrail.classify.nudenet import available

    pipe = tiny_pipeline("txt2img")
    pipe.set_progress_bar_config(disable=True)
    classifiers = {"always": lambda images: [{"unsafe": 1.0} for _ in images]}
    allowed_rule = (
        "  nudity: {model: nudenet, labels: {FEMALE_GENITALIA_EXPOSED: 0.5}, action: block}\n"
        if available()
        else "  never: {model: always, labels: {other: 0.5}, action: block}\n"
    )
    blocked_rule = "  always: {model: always, labels: {unsafe: 0.5}, action: block}\n"

    def policy(rule: str, preview: bool) -> guardrail.Policy:
        text = f"name: bench\nprivacy: {{prompts: plaintext}}\nclassifiers:\n{rule}"
        return guardrail.parse_policy(text + (f"preview: {{at: [{args.at}]}}\n" if preview else ""))

    def run(guard: guardrail.Guard | None) -> None:
        target = pipe if guard is None else guard.wrap(pipe)
        with contextlib.suppress(guardrail.PolicyViolation):
            target(
                "a fox", num_inference_steps=args.steps, height=64, width=64, generator=torch.Generator().manual_seed(0)
            )

    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as folder:
        figures["bare pipeline"] = timed(lambda: run(None), args.repeat)
        cases = (
            ("allowed, no preview", allowed_rule, False),
            ("allowed, preview checked", allowed_rule, True),
            ("blocked after the last step", blocked_rule, False),
            ("blocked at the preview", blocked_rule, True),
        )
        for name, rule, preview in cases:
            database = str(Path(folder) / f"{len(figures)}.db")
            with guardrail.Guard(policy=policy(rule, preview), database=database, classifiers=classifiers) as guard:
                figures[name] = timed(lambda guard=guard: run(guard), args.repeat)
    model = "NudeNet" if available() else "a function"
    print(f"tiny SD pipeline, {args.steps} steps of 64 px on this CPU; preview at {args.at:.0%}; outputs: {model}")
    for name, ms in figures.items():
        print(f"  {name:<30} {ms:8.1f} ms")
    saved = figures["blocked after the last step"] - figures["blocked at the preview"]
    share = saved / figures["blocked after the last step"]
    print(f"  a blocked call stopped early saves {saved:.1f} ms ({share:.0%} of it)")
    cost = figures["allowed, preview checked"] - figures["allowed, no preview"]
    print(f"  looking at one preview costs an allowed call {cost:.1f} ms")


if __name__ == "__main__":
    main()
