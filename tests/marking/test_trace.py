"""The fingerprint registry, the watermark and guardrail trace: a copy whose manifest was stripped
(re-encoded, resized, cropped) still leads back to its call, and to no other."""

import io
import json
from pathlib import Path

import pytest
import skimage.data
from PIL import Image

import guardrail
from guardrail.audit.erase import erase
from guardrail.audit.query import fingerprint_hashes, fingerprint_owners
from guardrail.marking.trace import FingerprintRegistry, trace_bytes
from tests.cli.test_cli import run
from tests.conftest import make_signer

POLICY = "name: p\nprivacy: {prompts: plaintext}\n"
UNMARKED = POLICY + "marking: {watermark: off}\n"
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "camera", "horse", "moon", "coins")
WIDE_MARGIN = ("coffee", "chelsea", "rocket", "camera", "moon")
"""Photos whose stripped copies read their mark back with a wide margin (weakest symbol >= 10 sd over
25 tokens each): asserted on every run. bench/watermark.py measures the rates on harder views."""


def photo(name: str) -> Image.Image:
    return Image.fromarray(getattr(skimage.data, name)()).convert("RGB").resize((512, 512))


def stripped(data: bytes) -> bytes:
    """What a re-upload does: a 2 % trim on each side, half the size, JPEG at quality 60 (no manifest
    survives it). Heavier crops move a global fingerprint past the match threshold: the watermark
    finds those (test_a_heavily_edited_copy_is_traced_by_its_watermark_alone)."""
    image = Image.open(io.BytesIO(data)).convert("RGB")
    w, h = image.size
    image = image.crop((int(w * 0.02), int(h * 0.02), int(w * 0.98), int(h * 0.98))).resize((w // 2, h // 2))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=60)
    return buffer.getvalue()


@pytest.fixture(params=["marked", "unmarked"])
def logged(request, database: str, dev_ca) -> tuple[guardrail.Guard, dict[str, tuple[str, bytes]]]:
    """One call per photo, each signed, with the watermark on or off; name -> (audit id, signed bytes)."""
    policy = guardrail.parse_policy(POLICY if request.param == "marked" else UNMARKED)
    guard = guardrail.Guard(policy=policy, database=database, signer=make_signer(dev_ca))
    calls = {}
    for name in PHOTOS:
        out = guard.wrap(lambda prompt, n=name: [photo(n)])(f"a photo of {name}", user=f"user-{name}")
        calls[name] = (out.governance.audit_id, out.governance.signed[0].data)
    yield guard, calls
    guard.close()


def test_a_stripped_copy_is_traced_to_its_call_and_no_other(logged, dev_ca) -> None:
    guard, calls = logged
    marked = guard.policy.marking.watermark != "off"
    anchors = dev_ca.trust_anchors.read_text()
    expected = [("c2pa", "strong"), *([("watermark", "strong")] if marked else []), ("fingerprint", "weak")]
    for name, (audit_id, data) in calls.items():
        signed = trace_bytes(data, guard.store.engine, trust_anchors=anchors)
        assert [(e.method, e.strength) for e in signed.evidence][: len(expected)] == expected
        assert {e.audit_id for e in signed.evidence} == {audit_id}
        copy = trace_bytes(stripped(data), guard.store.engine, trust_anchors=anchors)
        assert {e.audit_id for e in copy.evidence} == {audit_id}, name
        if name in WIDE_MARGIN or not marked:  # horse is a flat drawing: its mark is read half the time
            assert copy.fingerprint_only is not marked, name
            assert copy.evidence[0].method == ("watermark" if marked else "fingerprint"), name
        assert copy.records[audit_id]["user"] == f"user-{name}"
    unrelated = io.BytesIO()
    Image.fromarray(skimage.data.immunohistochemistry()).save(unrelated, "PNG")
    assert not trace_bytes(unrelated.getvalue(), guard.store.engine).found


def test_the_registry_is_written_with_the_outcome_and_outlives_erasure_not_retention(logged) -> None:
    guard, calls = logged
    ids, hashes = fingerprint_hashes(guard.store.engine)
    owners = fingerprint_owners(guard.store.engine, [int(i) for i in ids])
    assert sorted(owners.values()) == sorted((audit_id, 0) for audit_id, _ in calls.values())
    assert hashes.shape == (len(calls), 4) and str(hashes.dtype) == "uint64"
    assert any(int(h) >= 1 << 63 for h in hashes.ravel())  # the high bit round-trips through a signed BIGINT
    denying = guardrail.parse_policy(POLICY + "rules: [{id: no, effect: deny, prompt: {terms: [fox]}}]\n")
    with guardrail.Guard(policy=denying, database=guard.store.url) as other, pytest.raises(guardrail.PolicyViolation):
        other.wrap(lambda prompt: [photo("moon")])("a fox")  # a denied call returns nothing: nothing to register
    assert len(fingerprint_hashes(guard.store.engine)[0]) == len(calls)  # the denied call added none
    registry = FingerprintRegistry(guard.store.engine)  # kept across lookups, as a service would
    late = guard.wrap(lambda prompt: [photo("immunohistochemistry")])("one more", user="late")
    assert trace_bytes(stripped(late.governance.signed[0].data), guard.store.engine, registry=registry).found
    erase(guard.store, user="user-coffee", reason="request")  # personal data goes, the fingerprint stays
    copy = trace_bytes(stripped(calls["coffee"][1]), guard.store.engine, registry=registry)
    assert copy.found and copy.records[calls["coffee"][0]]["user"] is None
    erase(guard.store, older_than_days=1e-9, reason="retention")
    assert not trace_bytes(stripped(calls["coffee"][1]), guard.store.engine, registry=registry).found
    assert len(fingerprint_hashes(guard.store.engine)[0]) == 0
    assert not trace_bytes(stripped(calls["coffee"][1]), guard.store.engine).found


def test_trace_command(logged, tmp_path: Path, capsys, dev_ca) -> None:
    guard, calls = logged
    marked = guard.policy.marking.watermark != "off"
    url = guard.store.url
    audit_id, data = calls["chelsea"]
    leaked = tmp_path / "leaked.jpg"
    leaked.write_bytes(stripped(data))
    code, out, _ = run(capsys, "trace", str(leaked), "--database", url, "--json")
    result = json.loads(out)
    assert code == 0 and result["fingerprint_only"] is not marked and result["evidence"][0]["audit_id"] == audit_id
    code, out, _ = run(capsys, "trace", str(leaked), "--database", url)
    flat = " ".join(out.split())
    assert code == 0 and f"call {audit_id}" in flat and "user-chelsea" in flat
    assert ("only a fingerprint matched" in flat) is not marked
    assert ("watermark [strong]" in flat) is marked
    original = tmp_path / "original.png"
    original.write_bytes(data)
    code, out, _ = run(
        capsys, "trace", str(original), "--database", url, "--trust-anchors", str(dev_ca.trust_anchors), "--json"
    )
    assert code == 0 and json.loads(out)["evidence"][0] == {
        "method": "c2pa", "audit_id": audit_id, "image_index": None, "strength": "strong",
        "detail": "C2PA manifest (Trusted) names the call; the file is the one logged", "distance": None,
        "confidence": None,
    }  # fmt: skip
    other = tmp_path / "other.png"
    Image.fromarray(skimage.data.immunohistochemistry()).save(other)
    assert run(capsys, "trace", str(other), "--database", url)[0] == 1
    (tmp_path / "notes.txt").write_text("not an image")
    code, _, err = run(capsys, "trace", str(tmp_path / "notes.txt"), "--database", url)
    assert code == 2 and "notes.txt" in err


def test_a_heavily_edited_copy_is_traced_by_its_watermark_alone(database: str, dev_ca) -> None:
    """10 % cropped off, JPEG at quality 50, 10 % brighter: past the fingerprint's reach, the watermark
    still names the call and the image (as strong evidence)."""
    policy = guardrail.parse_policy(POLICY)
    with guardrail.Guard(policy=policy, database=database, signer=make_signer(dev_ca)) as guard:
        out = guard.wrap(lambda prompt: [photo("chelsea"), photo("coffee")])("two photos", user="u")
        image = Image.open(io.BytesIO(out.governance.signed[1].data)).convert("RGB")
        image = image.crop((40, 12, 40 + 461, 12 + 461))
        image = Image.eval(image, lambda v: min(255, int(v * 1.1)))
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=50)
        found = trace_bytes(buffer.getvalue(), guard.store.engine)
        assert [(e.method, e.audit_id, e.image_index, e.strength) for e in found.evidence] == [
            ("watermark", out.governance.audit_id, 1, "strong")
        ]
        assert found.evidence[0].confidence is not None and found.evidence[0].confidence > 3.9
