"""The watermark stage in a guarded call: every returned image is marked in its own container, the
token is audited and registered with the call, the manifest binds it, and the policy decides what
happens to an image that cannot be marked."""

import base64
import io

import c2pa
import numpy as np
import pytest
import skimage.data
import sqlalchemy as sa
from PIL import Image

import guardrail
from guardrail.images import image_sha256
from guardrail.marking import watermark
from guardrail.screening.hashes import FINGERPRINT, fingerprint
from tests.conftest import events, make_signer

POLICY = "name: p\nprivacy: {prompts: plaintext}\n"


def photo(name: str, size: int = 512) -> Image.Image:
    return Image.fromarray(getattr(skimage.data, name)()).convert("RGB").resize((size, size))


def registry(guard: guardrail.Guard) -> list[tuple]:
    with guard.store.engine.connect() as connection:
        query = "select call_id, image_index, watermark, watermark_algorithm, sha256 from output_fingerprints"
        return [tuple(row) for row in connection.execute(sa.text(query + " order by id"))]


def test_each_returned_image_carries_its_own_logged_token(sqlite_url: str, dev_ca) -> None:
    originals = [photo("coffee"), photo("rocket")]
    pixels = [np.asarray(image).copy() for image in originals]
    policy = guardrail.parse_policy(POLICY)
    with guardrail.Guard(policy=policy, database=sqlite_url, signer=make_signer(dev_ca)) as guard:
        out = guard.wrap(lambda prompt: originals)("two photos")
        tokens = [watermark.detect(np.asarray(image)) for image in out.images]
        assert out.images[0] is originals[0]  # marked in place: the caller's own objects
        assert all(t is not None for t in tokens) and tokens[0].token != tokens[1].token
        assert all((np.asarray(a) != b).any() for a, b in zip(out.images, pixels, strict=True))
        assert out.governance.output_sha256 == tuple(image_sha256(image) for image in out.images)
        outcome = events(guard, out.governance.audit_id)[-1]
        logged = [output["watermark"] for output in outcome["detail"]["outputs"]]
        assert logged == [f"{t.token:08x}" for t in tokens]
        assert outcome["detail"]["marking"] == {"watermark": watermark.NAME, "marked": 2}
        assert registry(guard) == [
            (out.governance.audit_id, i, t.token, watermark.NAME, out.governance.output_sha256[i])
            for i, t in enumerate(tokens)
        ]
        for signed, token in zip(out.governance.signed, tokens, strict=True):
            assert watermark.detect(np.asarray(Image.open(io.BytesIO(signed.data)).convert("RGB"))).token == token.token
            with c2pa.Reader("image/png", io.BytesIO(signed.data)) as reader:
                manifest = reader.get_active_manifest()
            bindings = [a["data"] for a in manifest["assertions"] if a["label"] == "c2pa.soft-binding"]
            assert [b["alg"] for b in bindings] == [watermark.NAME, f"org.guardrail.fingerprint.{FINGERPRINT}"]
            values = [base64.b64decode(b["blocks"][0]["value"]) for b in bindings]
            assert values[0] == token.token.to_bytes(4, "big")
            assert values[1] == b"".join(h.to_bytes(8, "big") for h in fingerprint(Image.open(io.BytesIO(signed.data))))


def test_arrays_and_tensors_are_marked_in_place(sqlite_url: str) -> None:
    torch = pytest.importorskip("torch")
    floats = np.asarray(photo("chelsea"), np.float32) / 255
    batch = torch.from_numpy(np.asarray(photo("moon"), np.float32).transpose(2, 0, 1) / 255)[None].clone()
    with guardrail.Guard(policy=guardrail.parse_policy(POLICY), database=sqlite_url) as guard:
        out = guard.wrap(lambda prompt: [floats, *batch])("arrays")
    read = watermark.detect((floats * 255).round().astype(np.uint8))
    from_tensor = watermark.detect((batch[0].numpy().transpose(1, 2, 0) * 255).round().astype(np.uint8))
    assert read is not None and from_tensor is not None
    assert registry(guard)[0][2] == read.token and registry(guard)[1][2] == from_tensor.token
    assert out.governance.output_sha256[0] == image_sha256(floats)


def test_an_image_too_small_is_returned_unmarked_or_withheld_as_the_policy_says(sqlite_url: str) -> None:
    small, large = photo("coffee", 96), photo("rocket")
    with guardrail.Guard(policy=guardrail.parse_policy(POLICY), database=sqlite_url) as guard:
        before = np.asarray(small).copy()
        out = guard.wrap(lambda prompt: [small, large])("optional")
        assert (np.asarray(out.images[0]) == before).all() and watermark.detect(np.asarray(out.images[1]))
        notes = events(guard, out.governance.audit_id)[-1]["detail"]["marking"]
        assert notes["marked"] == 1 and "96x96 is under the mark's 128 px" in notes["unmarked"]["0"]
        assert [row[2] is None for row in registry(guard)] == [True, False]
    required = guardrail.parse_policy(POLICY + "marking: {watermark: required}\n")
    with guardrail.Guard(policy=required, database=sqlite_url) as guard:
        with pytest.raises(guardrail.MarkingError, match="image 0 cannot carry the required watermark") as caught:
            guard.wrap(lambda prompt: [photo("coffee", 96)])("required")
        outcome = events(guard, caught.value.audit_id)[-1]
        assert outcome["status"] == "error" and "MarkingError" in outcome["error"]
        palette = photo("coffee").convert("P")  # the mark is not put into palette indices
        with pytest.raises(guardrail.MarkingError, match="PIL mode P cannot be marked"):
            guard.wrap(lambda prompt: [palette])("palette")
        white = Image.new("RGB", (256, 256), (255, 255, 255))  # saturated: half the mark is clipped, still read
        assert watermark.detect(np.asarray(guard.wrap(lambda prompt: [white])("white").images[0])) is not None


def test_marking_off_leaves_the_pixels_alone(sqlite_url: str) -> None:
    image = photo("coffee")
    before = np.asarray(image).copy()
    policy = guardrail.parse_policy(POLICY + "marking: {watermark: off}\n")
    with guardrail.Guard(policy=policy, database=sqlite_url) as guard:
        out = guard.wrap(lambda prompt: [image])("off")
        assert (np.asarray(out.images[0]) == before).all() and watermark.detect(before) is None
        assert "marking" not in events(guard, out.governance.audit_id)[-1]["detail"]
        assert registry(guard)[0][2:4] == (None, None)
