"""Tracing edited copies of logged outputs among N logged outputs: how many lead to the right call
(and none to a wrong one), by which evidence, and the lookup time.

The registry is filled straight into the table with N random fingerprints and watermark tokens, plus
the real rows of M logged outputs: views of scikit-image's photos, watermarked as the Guard marks them.
Each output is then edited as a leak would edit it (the screening evaluation's benign families) and
traced as `guardrail trace` does: manifest (none here: stripped), watermark, fingerprint registry.
Goals (issue 13): >= 99 % of edited copies to the right call among >= 100k logged outputs, none to a
wrong call; lookup <= 50 ms.
Run: .venv/bin/python bench/trace.py [--outputs N] [--logged M]
"""

from __future__ import annotations

import argparse
import io
import random
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))

from watermark import EDITS, PHOTOS, photo, view

from guardrail.audit.query import as_signed
from guardrail.audit.store import AuditStore
from guardrail.audit.tables import output_fingerprints
from guardrail.marking import watermark
from guardrail.marking.trace import FingerprintRegistry, trace_bytes
from guardrail.screening.hashes import FINGERPRINT, fingerprint

FAMILIES = ["jpeg q50", "resize 50%", "brightness +20%", "contrast -20%", "crop 10%", "crop 10% + jpeg q50"]


def jpeg_bytes(image: Image.Image, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--outputs", type=int, default=100_000)
    parser.add_argument("--logged", type=int, default=60)
    args = parser.parse_args()
    rng = random.Random(0)
    photos = [photo(name) for name in PHOTOS]
    real = []
    for _ in range(args.logged):
        token = watermark.new_token()
        real.append((Image.fromarray(watermark.embed(view(photos, rng, 512), token)), token))
    with tempfile.TemporaryDirectory() as folder:
        store = AuditStore(f"sqlite:///{folder}/audit.db")
        now = datetime.now(timezone.utc)

        def row(i: int, hashes: tuple[int, ...], token: int) -> dict:
            return {
                "call_id": f"{i:032x}", "image_index": 0, "created_at": now, "algorithm": FINGERPRINT,
                **{f"hash{j}": as_signed(h) for j, h in enumerate(hashes)}, "sha256": "0" * 64, "signed_sha256": None,
                "watermark": token, "watermark_algorithm": watermark.NAME,
            }  # fmt: skip

        rows = [
            row(i, tuple(rng.getrandbits(64) for _ in range(4)), rng.getrandbits(32))
            for i in range(args.outputs - args.logged)
        ]
        rows += [row(args.outputs + i, fingerprint(image), token) for i, (image, token) in enumerate(real)]
        with store.engine.begin() as connection:
            connection.execute(output_fingerprints.insert(), rows)
        registry = FingerprintRegistry(store.engine)
        right = dict.fromkeys(FAMILIES, 0)
        wrong = dict.fromkeys(FAMILIES, 0)
        similar = dict.fromkeys(FAMILIES, 0)
        by: dict[str, int] = {}
        times = []
        for i, (image, _) in enumerate(real):
            for family in FAMILIES:
                data = jpeg_bytes(EDITS[family](image, rng)) if "jpeg" not in family else None
                data = data or jpeg_bytes(EDITS[family](image, rng), 95)
                start = time.perf_counter()
                result = trace_bytes(data, store.engine, registry=registry)
                times.append(time.perf_counter() - start)
                own = f"{args.outputs + i:032x}"
                if result.found and result.evidence[0].audit_id == own:
                    right[family] += 1
                    by[result.evidence[0].method] = by.get(result.evidence[0].method, 0) + 1
                others = [e for e in result.evidence if e.audit_id != own]
                wrong[family] += sum(e.strength != "weak" or result.evidence[0] is e for e in others)
                similar[family] += sum(e.strength == "weak" and result.evidence[0] is not e for e in others)
        cold = []
        for image, _ in real[:7]:
            start = time.perf_counter()
            trace_bytes(jpeg_bytes(image), store.engine)
            cold.append(time.perf_counter() - start)
        store.close()
    print(f"edited copies of {args.logged} logged outputs, traced among {args.outputs} (copies saved as JPEG):")
    print("family                 right call   wrong call (first or strong)   weak matches to similar views")
    for family in FAMILIES:
        print(f"{family:<22} {right[family] / args.logged:9.1%}   {wrong[family]:>12}   {similar[family]:>29}")
    print("(the logged outputs are overlapping views of 15 photos: a weak fingerprint match to another view")
    print(" of the same photo is listed after the watermark's strong evidence, as guardrail trace lists it)")
    print(f"first evidence: {by}")
    print(f"lookup, registry kept in memory (a service): median {statistics.median(times) * 1000:.1f} ms,"
          f" p95 {np.percentile(times, 95) * 1000:.1f} ms (goal <= 50 ms)")  # fmt: skip
    print(f"lookup one-shot (the CLI reads the registry): median {statistics.median(cold) * 1000:.1f} ms")


if __name__ == "__main__":
    main()
