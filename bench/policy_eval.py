"""Policy evaluation cost per prompt, with a policy of 1,000 terms and 100 rules.

Goal (issues 2 and 15): p50 <= 50 us, p99 <= 200 us per prompt, on the 2-core CI machine, with a
fifth of the terms two words long, an exception phrase on every term rule, inflections on, and a
tenth of the prompts carrying CamelCase hashtags and handles. The same policy with exact terms and
no exceptions (what matching could do before issue 15) is measured in the same run as the baseline.
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


def synthetic_policy(rng: random.Random, *, rich: bool = True) -> Policy:
    terms = [f"zq{rng.randrange(36**5):x}" for _ in range(1000)]
    for i in range(0, 1000, 5):  # a fifth of the terms are two words
        terms[i] = f"zq{rng.randrange(36**3):x} zr{rng.randrange(36**3):x}"
    rules: list[dict] = []
    for i in range(80):  # term rules: 1,000 terms spread over 80 rules
        prompt: dict = {"terms": terms[i::80]}
        prompt |= {"unless": [f"zz safe phrase {i}"]} if rich else {"match": "exact"}
        rules.append({"id": f"terms-{i}", "effect": "deny" if i % 4 else "flag", "prompt": prompt})
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


def measure(engine: PolicyEngine, requests: list[GenerationRequest]) -> dict[str, float]:
    for r in requests[:200]:
        engine.evaluate(r)  # warm up
    samples = []
    for _ in range(5):
        for r in requests:
            start = time.perf_counter_ns()
            engine.evaluate(r)
            samples.append(time.perf_counter_ns() - start)
    return percentiles(samples)


def main() -> None:
    rng = random.Random(0)
    policy = synthetic_policy(random.Random(0))
    baseline = PolicyEngine(synthetic_policy(random.Random(0), rich=False))
    terms = sum(len(r.prompt.terms) for r in policy.rules if r.prompt)
    engine = PolicyEngine(policy)
    prompts = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 40))) for _ in range(2000)]
    for i in range(0, len(prompts), 10):  # a tenth with CamelCase hashtags and handles
        prompts[i] += " #GoldenHourMagic @StudioGhibliFan"
    requests = [
        GenerationRequest(
            prompts=(p,), negative_prompts=("blurry",), width=512, height=512, steps=30, roles=("artist",)
        )
        for p in prompts
    ]
    base = measure(baseline, requests)
    stats = measure(engine, requests)
    mean_words = sum(len(p.split()) for p in prompts) / len(prompts)
    print(f"policy: {len(policy.rules)} rules, {terms} terms (a fifth of two words), an exception per term rule")
    print(f"prompts: {len(requests) * 5} evaluations, {mean_words:.0f} words on average, a tenth with hashtags")
    print(f"baseline, exact terms, no exceptions: p50 {base['p50_us']:.1f} us  p99 {base['p99_us']:.1f} us")
    p50, p99 = stats["p50_us"], stats["p99_us"]
    print(f"evaluate per prompt: p50 {p50:.1f} us  p99 {p99:.1f} us  mean {stats['mean_us']:.1f} us")
    print(
        f"goal p50 <= 50 us: {'met' if p50 <= 50 else 'MISSED'}; "
        f"goal p99 <= 200 us: {'met' if p99 <= 200 else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
