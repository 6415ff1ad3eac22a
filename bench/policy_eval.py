"""Policy evaluation cost per prompt, with a policy of 1,000 terms and 100 rules.

Goal (issue 2): p50 <= 50 us, p99 <= 200 us per prompt, on the 2-core CI machine.
Run: .venv/bin/python bench/policy_eval.py
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _stats import percentiles

from guardrail.policy.engine import PolicyEngine
from guardrail.policy.schema import Policy
from guardrail.request import GenerationRequest

WORDS = (
    "a an the of in on at with by watercolor oil painting portrait landscape fox cat dog castle forest river "
    "mountain sunset dusk dawn city street neon cyberpunk medieval knight dragon wizard robot spaceship ocean "
    "lighthouse garden flower rose detailed cinematic lighting 4k photorealistic sketch pencil charcoal soft "
    "dramatic golden hour misty foggy snowy rainy vibrant pastel minimalist abstract surreal baroque gothic"
).split()


def synthetic_policy(rng: random.Random) -> Policy:
    terms = [f"zq{rng.randrange(36**5):x}" for _ in range(1000)]
    rules: list[dict] = []
    for i in range(80):  # term rules: 1,000 terms spread over 80 rules
        rules.append({"id": f"terms-{i}", "effect": "deny" if i % 4 else "flag", "prompt": {"terms": terms[i::80]}})
    for i in range(10):
        rules.append({"id": f"regex-{i}", "effect": "flag", "prompt": {"regex": [rf"\bzz{i}\w*\b"]}})
    for i in range(5):
        rules.append(
            {"id": f"scoped-{i}", "effect": "deny", "when": {"roles": [f"role{i}"]}, "prompt": {"terms": [f"yy{i}"]}}
        )
    rules.append({"id": "limits", "effect": "modify", "limits": {"width": {"max": 1024}, "steps": {"max": 50}}})
    rules.append({"id": "neg", "effect": "modify", "require_negative": ["nsfw", "low quality"]})
    rules.append({"id": "models", "effect": "deny", "models": {"deny": ["evil/*"]}})
    rules.append({"id": "adapters", "effect": "deny", "adapters": {"deny": ["bad-*"]}})
    rules.append({"id": "grant", "effect": "allow", "when": {"roles": ["artist"]}})
    return Policy.model_validate({"name": "bench", "rules": rules})


def main() -> None:
    rng = random.Random(0)
    policy = synthetic_policy(rng)
    terms = sum(len(r.prompt.terms) for r in policy.rules if r.prompt)
    engine = PolicyEngine(policy)
    prompts = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 40))) for _ in range(2000)]
    requests = [
        GenerationRequest(
            prompts=(p,), negative_prompts=("blurry",), width=512, height=512, steps=30, roles=("artist",)
        )
        for p in prompts
    ]
    for r in requests[:200]:
        engine.evaluate(r)  # warm up
    samples = []
    for _ in range(5):
        for r in requests:
            start = time.perf_counter_ns()
            engine.evaluate(r)
            samples.append(time.perf_counter_ns() - start)
    stats = percentiles(samples)
    mean_words = sum(len(p.split()) for p in prompts) / len(prompts)
    print(f"policy: {len(policy.rules)} rules, {terms} terms")
    print(f"prompts: {len(samples)} evaluations, {mean_words:.0f} words on average")
    p50, p99 = stats["p50_us"], stats["p99_us"]
    print(f"evaluate per prompt: p50 {p50:.1f} us  p99 {p99:.1f} us  mean {stats['mean_us']:.1f} us")
    print(
        f"goal p50 <= 50 us: {'met' if p50 <= 50 else 'MISSED'}; "
        f"goal p99 <= 200 us: {'met' if p99 <= 200 else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
