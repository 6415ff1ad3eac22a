"""Tracing a stripped copy through the fingerprint registry: lookup time among N logged outputs.

The registry is filled with N random fingerprints (and the real one of the traced image) straight
into the table; the trace reads every row and compares (numpy popcount), as `guardrail trace` does.
Goal (issue 13): <= 50 ms among >= 100k logged outputs.
Run: .venv/bin/python bench/trace.py [--outputs N]
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

import skimage.data
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))

from guardrail.audit.query import as_signed
from guardrail.audit.store import AuditStore
from guardrail.audit.tables import output_fingerprints
from guardrail.marking.trace import FingerprintRegistry, trace_bytes
from guardrail.screening.hashes import FINGERPRINT, fingerprint


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--outputs", type=int, default=100_000)
    args = parser.parse_args()
    rng = random.Random(0)
    image = Image.fromarray(skimage.data.coffee()).convert("RGB")
    buffer = io.BytesIO()
    image.resize((300, 200)).save(buffer, "JPEG", quality=60)
    with tempfile.TemporaryDirectory() as folder:
        store = AuditStore(f"sqlite:///{folder}/audit.db")
        now = datetime.now(timezone.utc)

        def row(i: int, hashes: tuple[int, ...]) -> dict:
            return {
                "call_id": f"{i:032x}", "image_index": 0, "created_at": now, "algorithm": FINGERPRINT,
                **{f"hash{j}": as_signed(h) for j, h in enumerate(hashes)}, "sha256": "0" * 64, "signed_sha256": None,
            }  # fmt: skip

        rows = [row(i, tuple(rng.getrandbits(64) for _ in range(4))) for i in range(args.outputs - 1)]
        rows.append(row(args.outputs, fingerprint(image)))
        with store.engine.begin() as connection:
            connection.execute(output_fingerprints.insert(), rows)
        cold, warm = [], []
        registry = FingerprintRegistry(store.engine)
        for samples, kept in ((cold, None), (warm, registry)):
            for _ in range(7):
                start = time.perf_counter()
                result = trace_bytes(buffer.getvalue(), store.engine, registry=kept)
                samples.append(time.perf_counter() - start)
                assert result.found and result.evidence[0].audit_id == f"{args.outputs:032x}"
        store.close()
    one_shot, kept_ms = statistics.median(cold) * 1000, statistics.median(warm[1:]) * 1000
    print(f"trace of a re-encoded copy among {args.outputs} logged outputs (medians of 7; goal <= 50 ms):")
    print(f"  one-shot (the CLI: reads the registry): {one_shot:.1f} ms")
    print(f"  with a FingerprintRegistry kept in memory (a service): {kept_ms:.1f} ms")


if __name__ == "__main__":
    main()
