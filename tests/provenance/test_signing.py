"""Real C2PA signing and validation (c2pa-python), with a development CA made for the test session."""

import io
import json
import threading

import c2pa
import pytest
from PIL import Image

import guardrail
from guardrail.audit.query import audit_record
from guardrail.provenance.manifest import COMPOSITE, TRAINED
from guardrail.provenance.verify import verify_bytes
from guardrail.testing import sample_image
from tests.conftest import DEFAULT_POLICY, events, make_signer

NEGATIVE = "nsfw, nudity, gore"


def read_manifest(data: bytes) -> dict:
    with c2pa.Reader(
        io.BytesIO(data), context=c2pa.Context.from_dict({"verify": {"remote_manifest_fetch": False}})
    ) as r:
        return r.get_active_manifest()


def actions(manifest: dict) -> list[dict]:
    return next(a["data"]["actions"] for a in manifest["assertions"] if a["label"].startswith("c2pa.actions"))


@pytest.mark.parametrize(("fmt", "mime"), [("png", "image/png"), ("jpeg", "image/jpeg"), ("webp", "image/webp")])
def test_round_trip_in_every_format(sqlite_url, hmac_key, dev_ca, pipelines, fmt, mime) -> None:
    signer = make_signer(dev_ca, output_format=fmt)
    with guardrail.Guard(policy=DEFAULT_POLICY, database=sqlite_url, hmac_key=hmac_key, signer=signer) as guard:
        out = guard.wrap(pipelines("txt2img"), model="tiny-sd")(
            "a watercolor fox", negative_prompt=NEGATIVE, user="alice", num_inference_steps=2
        )
        [signed] = out.governance.signed
        assert signed.mime == mime
        result = verify_bytes(signed.data, trust_anchors=dev_ca.trust_anchors.read_text())
        result = result.with_audit(audit_record(guard.store.engine, result))
        outcome = events(guard, out.governance.audit_id)[-1]
    assert (result.state, result.failures) == ("Trusted", [])
    assert result.ok(require_trusted=True)
    assert result.audit == {**result.audit, "found": True, "hash_matches": True, "status": "allowed"}
    governance = result.governance
    assert governance["audit_id"] == out.governance.audit_id
    assert governance["policy"] == {"name": "default", "version": guard.policy_version}
    assert governance["decision"] == "allow" and governance["rules"] == []
    assert governance["prompt"] == {
        "privacy": "hmac",
        "key_id": hmac_key.key_id,
        "values": [hmac_key.digest("a watercolor fox")],
    }
    assert "watercolor" not in json.dumps(read_manifest(signed.data))
    assert result.generator[0]["name"] == "guardrail"
    [logged] = outcome["detail"]["outputs"]
    assert (
        logged["signed_sha256"] == signed.sha256
        and logged["manifest"] == signed.manifest_label == result.manifest_label
    )
    [action] = actions(read_manifest(signed.data))
    assert (action["action"], action["digitalSourceType"]) == ("c2pa.created", TRAINED)
    assert action["softwareAgent"]["name"] == "tiny-sd (StableDiffusionPipeline)"


def test_no_default_thumbnail_and_small_manifest(signing_guard) -> None:
    image = Image.effect_noise((512, 512), 64).convert("RGB")
    out = signing_guard.wrap(lambda prompt, negative_prompt="": [image])("a fox", negative_prompt=NEGATIVE)
    manifest = read_manifest(out.governance.signed[0].data)
    assert "thumbnail" not in manifest
    from guardrail.images import encode

    # the manifest (with the governance, disclosure and two soft-binding assertions) stays small
    assert len(out.governance.signed[0].data) - len(encode(image, "PNG")) < 6000


def test_trust_depends_on_the_anchors(signing_guard, dev_ca, other_ca) -> None:
    out = signing_guard.wrap(lambda prompt, negative_prompt="": [sample_image()])("a fox", negative_prompt=NEGATIVE)
    data = out.governance.signed[0].data
    untrusted = verify_bytes(data, trust_anchors=other_ca.trust_anchors.read_text())
    assert untrusted.state == "Valid" and "signingCredential.untrusted" in untrusted.failures
    assert not untrusted.ok(require_trusted=True)
    anonymous = verify_bytes(data)
    assert anonymous.state == "Valid" and anonymous.ok(require_trusted=False)


def test_tampering_is_detected(signing_guard, dev_ca) -> None:
    out = signing_guard.wrap(lambda prompt, negative_prompt="": [sample_image(128)])("a fox", negative_prompt=NEGATIVE)
    data = out.governance.signed[0].data
    flipped = bytearray(data)
    flipped[len(flipped) // 2] ^= 0x01
    result = verify_bytes(bytes(flipped), trust_anchors=dev_ca.trust_anchors.read_text())
    result = result.with_audit(audit_record(signing_guard.store.engine, result))
    assert result.state == "Invalid" and "assertion.dataHash.mismatch" in result.failures
    assert result.audit["hash_matches"] is False
    resaved = io.BytesIO()
    Image.open(io.BytesIO(data)).save(resaved, "PNG")
    stripped = verify_bytes(resaved.getvalue())
    assert stripped.state == "NoManifest" and not stripped.ok(require_trusted=False)


def test_img2img_carries_a_signed_input_as_parent_ingredient(signing_guard, pipelines, tmp_path) -> None:
    first = signing_guard.wrap(lambda prompt, negative_prompt="": [sample_image(64)])("a fox", negative_prompt=NEGATIVE)
    source = first.governance.save(0, tmp_path / "source.png")
    start = guardrail.open_image(source)
    out = signing_guard.wrap(pipelines("img2img"))(
        "a fox in winter", image=start, strength=0.8, num_inference_steps=2, negative_prompt=NEGATIVE
    )
    manifest = read_manifest(out.governance.signed[0].data)
    [parent] = [i for i in manifest["ingredients"] if i["relationship"] == "parentOf"]
    assert parent.get("active_manifest") == first.governance.signed[0].manifest_label
    assert [a["action"] for a in actions(manifest)][-1] == "c2pa.edited"
    assert actions(manifest)[-1]["digitalSourceType"] == TRAINED
    assert verify_bytes(out.governance.signed[0].data).failures == ["signingCredential.untrusted"]  # no anchors


def test_inpaint_and_controlnet_ingredients(signing_guard, pipelines) -> None:
    inpaint = signing_guard.wrap(pipelines("inpaint"))(
        "a fox", image=sample_image(), mask_image=sample_image(seed=5), num_inference_steps=2, negative_prompt=NEGATIVE
    )
    manifest = read_manifest(inpaint.governance.signed[0].data)
    assert sorted(i["relationship"] for i in manifest["ingredients"]) == ["inputTo", "parentOf"]
    assert actions(manifest)[-1]["digitalSourceType"] == COMPOSITE
    control = signing_guard.wrap(pipelines("controlnet"))(
        "a fox", image=sample_image(), num_inference_steps=2, negative_prompt=NEGATIVE
    )
    manifest = read_manifest(control.governance.signed[0].data)
    assert [i["relationship"] for i in manifest["ingredients"]] == ["inputTo"]
    assert actions(manifest)[0]["action"] == "c2pa.created"


def test_one_guard_signs_from_many_threads(signing_guard, dev_ca) -> None:
    pipe = signing_guard.wrap(lambda prompt, negative_prompt="": [sample_image(32, seed=len(prompt))])
    signed, failures = [], []

    def worker(n: int) -> None:
        try:
            for i in range(5):
                signed.append(pipe(f"fox {n} {'x' * i}", negative_prompt=NEGATIVE).governance.signed[0])
        except Exception as exc:  # pragma: no cover - reported below
            failures.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == [] and len(signed) == 20
    anchors = dev_ca.trust_anchors.read_text()
    assert all(verify_bytes(s.data, trust_anchors=anchors).state == "Trusted" for s in signed)
    assert len({s.manifest_label for s in signed}) == 20


def test_signing_callable_for_kms_keys(sqlite_url, hmac_key, dev_ca) -> None:
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    key = serialization.load_pem_private_key(dev_ca.key.read_bytes(), None)
    calls = []

    def kms_sign(data: bytes) -> bytes:  # stands where a KMS/HSM call would: the key never reaches guardrail
        calls.append(len(data))
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    signer = guardrail.ImageSigner(certificate_chain=dev_ca.chain.read_bytes(), sign_callback=kms_sign)
    with guardrail.Guard(policy=DEFAULT_POLICY, database=sqlite_url, hmac_key=hmac_key, signer=signer) as guard:
        out = guard.wrap(lambda prompt, negative_prompt="": [sample_image()])("a fox", negative_prompt=NEGATIVE)
    assert calls
    assert (
        verify_bytes(out.governance.signed[0].data, trust_anchors=dev_ca.trust_anchors.read_text()).state == "Trusted"
    )


def required_policy(tmp_path) -> guardrail.Policy:
    text = DEFAULT_POLICY.read_text() + "\nprovenance:\n  required: true\n"
    return guardrail.parse_policy(text)


def test_required_signing_failure_withholds_the_images(sqlite_url, hmac_key, dev_ca, tmp_path) -> None:
    def kms_down(data: bytes) -> bytes:
        raise ConnectionError("KMS unreachable")

    signer = guardrail.ImageSigner(certificate_chain=dev_ca.chain.read_bytes(), sign_callback=kms_down)
    with guardrail.Guard(
        policy=required_policy(tmp_path), database=sqlite_url, hmac_key=hmac_key, signer=signer
    ) as guard:
        pipe = guard.wrap(lambda prompt, negative_prompt="": [sample_image()])
        with pytest.raises(guardrail.SigningError, match="withheld") as info:
            pipe("a fox", negative_prompt=NEGATIVE)
        outcome = events(guard, info.value.audit_id)[-1]
    assert outcome["status"] == "error" and outcome["error"].startswith("SigningError")


def test_optional_signing_failure_is_audited_and_returns_unsigned(sqlite_url, hmac_key, dev_ca) -> None:
    def kms_down(data: bytes) -> bytes:
        raise ConnectionError("KMS unreachable")

    signer = guardrail.ImageSigner(certificate_chain=dev_ca.chain.read_bytes(), sign_callback=kms_down)
    with guardrail.Guard(policy=DEFAULT_POLICY, database=sqlite_url, hmac_key=hmac_key, signer=signer) as guard:
        out = guard.wrap(lambda prompt, negative_prompt="": [sample_image()])("a fox", negative_prompt=NEGATIVE)
        outcome = events(guard, out.governance.audit_id)[-1]
    assert out.governance.signed == () and len(out.images) == 1
    assert "signing" in outcome["detail"]["signing_error"].lower() or outcome["detail"]["signing_error"]
    with pytest.raises(ValueError, match="not signed"):
        out.governance.save(0, "unused.png")


def test_required_signing_without_a_signer_fails_at_start(sqlite_url, hmac_key, tmp_path) -> None:
    with pytest.raises(guardrail.ConfigError, match="requires signed images"):
        guardrail.Guard(policy=required_policy(tmp_path), database=sqlite_url, hmac_key=hmac_key)


def test_signer_configuration_errors(dev_ca, tmp_path) -> None:
    with pytest.raises(guardrail.ConfigError, match="file not found"):
        guardrail.ImageSigner.from_files(tmp_path / "none.pem", dev_ca.key)
    with pytest.raises(guardrail.ConfigError, match="algorithm"):
        make_signer(dev_ca, algorithm="md5")
    loose = tmp_path / "loose.key"
    loose.write_bytes(dev_ca.key.read_bytes())
    loose.chmod(0o644)
    with pytest.warns(UserWarning, match="readable by others"):
        guardrail.ImageSigner.from_files(dev_ca.chain, loose)
    assert "BEGIN" not in repr(make_signer(dev_ca))


def test_open_image_limits_size_before_decoding(tmp_path) -> None:
    from guardrail.images import ImageTooLarge

    big = tmp_path / "big.png"
    Image.new("RGB", (3000, 3000)).save(big)
    with pytest.raises(ImageTooLarge, match="pixel limit"):
        guardrail.open_image(big, max_pixels=1_000_000)
    with pytest.raises(ImageTooLarge, match="byte limit"):
        guardrail.open_image(big, max_bytes=100)
    assert guardrail.open_image(big).size == (3000, 3000)


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "P", "I;16"])
def test_png_encoding_is_lossless_with_fpng_and_with_the_pillow_fallback(mode: str) -> None:
    import numpy as np

    from guardrail.images import encode_png

    image = sample_image(96).convert("RGB")
    if mode == "RGBA":
        image.putalpha(Image.linear_gradient("L").resize(image.size))
    elif mode != "RGB":
        image = image.convert("L").convert(mode)
    fast, plain = encode_png(image), encode_png(image, fast=False)
    for data in (fast, plain):
        back = Image.open(io.BytesIO(data))
        assert back.format == "PNG" and back.mode == image.mode
        assert np.array_equal(np.asarray(back), np.asarray(image))
    if mode in ("RGB", "RGBA"):
        assert fast != plain  # fpng wrote it (its own deflate), not Pillow


def test_the_images_of_a_call_are_signed_concurrently_in_order(signing_guard) -> None:
    images = [sample_image(64, seed=i) for i in range(6)]
    out = signing_guard.wrap(lambda prompt, negative_prompt="": images)("a fox", negative_prompt=NEGATIVE)
    assert len(out.governance.signed) == 6
    for image, signed in zip(images, out.governance.signed, strict=True):
        back = Image.open(io.BytesIO(signed.data)).convert("RGB")
        assert back.tobytes() == image.convert("RGB").tobytes()  # each signature is over its own image
