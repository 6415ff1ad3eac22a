"""Trace a leaked image back to the call that made it, after its C2PA manifest was stripped.

A "generator" (here a function returning scikit-image's sample photos, standing in for a diffusion
pipeline) is guarded; three users generate; one image leaks as a screenshot-like copy: a tenth cut
off, re-encoded as JPEG, so no manifest survives. `guardrail trace` (here: trace_bytes) reads the
imperceptible watermark the Guard put into every image and finds its token in the registry written
with each call's outcome; a lighter copy (a re-encode only) is found by its perceptual fingerprint
too, as weaker evidence. Runs offline.

    python examples/trace_a_leaked_image.py
    guardrail trace .trace-demo/leaked.jpg .trace-demo/reencoded.jpg --config .trace-demo/guardrail.yaml
"""

from __future__ import annotations

import io
from pathlib import Path

import skimage.data
from PIL import Image

import guardrail

workdir = Path(".trace-demo")


def generator(prompt: str, negative_prompt: str = "") -> list[Image.Image]:
    """Stands in for a pipeline: a different photo per prompt."""
    photos = {"cat": skimage.data.chelsea, "coffee": skimage.data.coffee, "rocket": skimage.data.rocket}
    name = next((word for word in photos if word in prompt), "rocket")
    return [Image.fromarray(photos[name]()).convert("RGB")]


def screenshot(data: bytes, cut: float) -> bytes:
    """A copy as a screenshot tool or a re-upload makes it: `cut` of each side cut off, JPEG 70."""
    image = Image.open(io.BytesIO(data)).convert("RGB")
    w, h = image.size
    image = image.crop((int(w * cut), int(h * cut / 2), w - int(w * cut / 3), h - int(h * cut)))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=70)
    return buffer.getvalue()


def main() -> None:
    project = guardrail.init_project(workdir, dev_ca=workdir / ".guardrail" / "dev-ca", force=True)
    with guardrail.Guard.from_config(project.config) as guard:
        generate = guard.wrap(generator, model="photo-stand-in")
        outputs = {
            user: generate(prompt, negative_prompt="nsfw, nudity, gore", user=user)
            for user, prompt in (("alice", "a cat on a sofa"), ("bob", "a cup of coffee"), ("carol", "a rocket"))
        }
        original = outputs["bob"].governance.signed[0].data
        for name, cut in (("leaked.jpg", 0.12), ("reencoded.jpg", 0.0)):
            leaked = workdir / name
            leaked.write_bytes(screenshot(original, cut))
            print(f"leaked copy: {leaked} ({len(leaked.read_bytes())} bytes, {cut:.0%} cut off)")
            print(f"its manifest: {guardrail.verify_bytes(leaked.read_bytes()).state}")
            result = guardrail.trace_bytes(leaked.read_bytes(), guard.store.engine)
            if not result.found:
                raise SystemExit("not traced")
            for item in result.evidence:
                record = result.records[item.audit_id]
                print(f"traced by {item.method} ({item.strength} evidence): {item.detail}")
                print(f"  call {item.audit_id}: user {record['user']}, {record['status']}, at {record['started_at']}")
            assert {item.audit_id for item in result.evidence} == {outputs["bob"].governance.audit_id}


if __name__ == "__main__":
    main()
