"""The whole guarded call on real image sizes: every post-generation stage together, per image.

A no-op generator returns K natural photos of S px (scikit-image's, resized), so what is measured is
all that guardrail adds: the default policy, one screening set of N references (action flag, so
every image goes on to be signed), the watermark, C2PA signing to PNG with the development CA, the
SQLite audit log; then the same with a NudeNet classifier rule (flag), when the extra is installed.
The bare generator is timed in the same run. Per-stage times are the medians the audit log records
for the measured calls. The set is built once and cached under .bench/ (about 20 s).

Goals (issue 19, this 2-core CPU): 4 x 512 px, 10k references: <= 32 ms added per image; 1 x 1024 px:
<= 62 ms added.
Run: .venv/bin/python bench/full_call.py [--references N] [--calls R]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import skimage.data
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))

from screening_speed import reference_set

import guardrail
from guardrail.audit.query import call_events
from guardrail.screening.refsets import ReferenceSet

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / ".bench"
OUTPUTS = ("astronaut", "coffee", "chelsea", "rocket")  # natural photos; the set holds patches of them
NEGATIVE = "nsfw, nudity, gore"


def cached_set(size: int) -> ReferenceSet:
    folder = CACHE / f"full-call-{size}"
    if (folder / "refset.json").exists():
        return ReferenceSet.open(folder)
    print(f"building a {size}-reference set in {folder} (once)", flush=True)
    built = reference_set(size)
    built.folder = folder
    built.save()
    return ReferenceSet.open(folder)


def photos(count: int, side: int) -> list[Image.Image]:
    return [
        Image.fromarray(getattr(skimage.data, OUTPUTS[i % len(OUTPUTS)])()).convert("RGB").resize((side, side))
        for i in range(count)
    ]


CLASSIFIERS = """classifiers:
  nudity:
    model: nudenet
    labels: {FEMALE_BREAST_EXPOSED: 0.6, FEMALE_GENITALIA_EXPOSED: 0.5, MALE_GENITALIA_EXPOSED: 0.5}
    action: flag
"""


def run(count: int, side: int, refset: ReferenceSet, calls: int, folder: Path, *, classify: bool = False) -> None:
    images = photos(count, side)

    def generate(prompt: str, negative_prompt: str = "") -> list[Image.Image]:
        return [image.copy() for image in images]  # fresh images: the watermark stage marks them in place

    ca = guardrail.create_dev_ca(folder / f"ca-{count}-{side}-{classify}")
    policy = guardrail.parse_policy(
        (REPO / "policies" / "default.yaml").read_text()
        + "screening:\n  sets:\n    bench: {action: flag}\n"
        + (CLASSIFIERS if classify else "")
    )
    guard = guardrail.Guard(
        policy=policy,
        database=str(folder / f"audit-{count}-{side}-{classify}.db"),
        hmac_key=guardrail.HmacKey(os.urandom(32)),
        reference_sets={"bench": refset},
        signer=guardrail.ImageSigner.from_files(ca.chain, ca.key),
    )
    pipe = guard.wrap(generate, model="noop")
    for _ in range(2):
        pipe("a watercolor fox", negative_prompt=NEGATIVE)  # warm up: indexes, first signature
    bare, guarded, ids = [], [], []
    for _ in range(calls):  # alternate, so that drift on this VM hits both alike
        start = time.perf_counter()
        generate("a watercolor fox", NEGATIVE)
        bare.append(time.perf_counter() - start)
        start = time.perf_counter()
        out = pipe("a watercolor fox", negative_prompt=NEGATIVE)
        guarded.append(time.perf_counter() - start)
        ids.append(out.governance.audit_id)
    assert len(out.governance.signed) == count
    stages: dict[str, list[float]] = {}
    for call_id in ids:
        outcome = call_events(guard.store.engine, call_id)[-1]
        for name, ms in outcome["detail"]["durations_ms"].items():
            stages.setdefault(name, []).append(ms)
    guard.close()
    added = (statistics.median(guarded) - statistics.median(bare)) * 1000
    goal = 32 if side <= 512 else 62
    with_classifier = ", with the NudeNet classifier rule (CPU)" if classify else ""
    print(f"\n{count} x {side} px, {len(refset.entries)} references{with_classifier}, {calls} calls (medians)")
    print(f"  bare generator        {statistics.median(bare) * 1000:8.2f} ms per call")
    print(f"  guarded call          {statistics.median(guarded) * 1000:8.2f} ms per call")
    for name in guard.pipeline.names:
        if name in stages:
            print(f"    {name:<18}  {statistics.median(stages[name]):8.2f} ms")
    verdict = "met" if added / count <= goal else "MISSED"
    if classify:  # the goal is for the governance itself; classifiers are reported beside it
        print(f"  added per image       {added / count:8.2f} ms  (classifiers on the GPU where there is one)")
        return
    print(f"  added per image       {added / count:8.2f} ms  (goal <= {goal} ms: {verdict})")


def encoders() -> None:
    """PNG encoding of one image, fpng against Pillow's fastest level (what signing used before)."""
    from _stats import median_ms

    from guardrail.images import encode_png

    print("\nPNG encoding, lossless (medians)")
    for side in (512, 1024):
        [image] = photos(1, side)
        fast = median_ms(lambda image=image: encode_png(image), 20)
        plain = median_ms(lambda image=image: encode_png(image, fast=False), 20)
        print(f"  {side} px: fpng {fast:6.2f} ms, Pillow level 1 {plain:6.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--references", type=int, default=10_000)
    parser.add_argument("--calls", type=int, default=10)
    args = parser.parse_args()
    refset = cached_set(args.references)
    with tempfile.TemporaryDirectory(prefix="full-call-") as folder:
        run(4, 512, refset, args.calls, Path(folder))
        run(1, 1024, refset, args.calls, Path(folder))
        from guardrail.classify.nudenet import available

        if available():
            run(4, 512, refset, args.calls, Path(folder), classify=True)
            run(1, 1024, refset, args.calls, Path(folder), classify=True)
    encoders()


if __name__ == "__main__":
    main()
