"""The visible label: drawn onto every returned image before the watermark and the signature, at
least the policy's share of the shorter side tall, only inside its band, recorded in the manifest."""

import io
from pathlib import Path

import c2pa
import numpy as np
import pytest
import skimage.data
import sqlalchemy as sa
from PIL import Image

import guardrail
from guardrail.images import image_sha256
from guardrail.marking import watermark
from guardrail.screening.hashes import fingerprint
from tests.conftest import events, make_signer

POLICY = "name: p\nprivacy: {prompts: plaintext}\n"
DEJAVU = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")


def photo(name: str, size: tuple[int, int] = (512, 384)) -> Image.Image:
    return Image.fromarray(getattr(skimage.data, name)()).convert("RGB").resize(size)


def labelled(sqlite_url: str, marking: str, images: list, **guard_options) -> tuple:
    policy = guardrail.parse_policy(POLICY + f"marking: {marking}\n")
    with guardrail.Guard(policy=policy, database=sqlite_url, **guard_options) as guard:
        out = guard.wrap(lambda prompt: images)("labelled")
        return out, events(guard, out.governance.audit_id)[-1]


def test_the_label_is_drawn_in_its_band_only_and_tall_enough(sqlite_url: str) -> None:
    image = photo("coffee")
    before = np.asarray(image).copy()
    marking = "{watermark: off, label: {text: AI-generated, position: bottom-right, min_size_pct: 5}}"
    out, outcome = labelled(sqlite_url, marking, [image])
    drawn = outcome["detail"]["marking"]["label"][0]
    assert drawn["text"] == "AI-generated" and drawn["text_height_px"] >= 0.05 * 384
    band = drawn["band"]
    x0, y0, x1, y1 = band["x"], band["y"], band["x"] + band["width"], band["y"] + band["height"]
    assert x1 <= 512 and y1 <= 384 and x0 > 256 and y0 > 192  # bottom right
    after = np.asarray(out.images[0])
    inside = np.zeros(after.shape[:2], bool)
    inside[y0 : y1 + 1, x0 : x1 + 1] = True
    changed = (after != before).any(axis=2)
    assert changed[inside].mean() > 0.9 and not changed[~inside].any()
    band = after[y0 : y1 + 1, x0 : x1 + 1].astype(int)
    assert (band.max(axis=2) >= 250).sum() > 0.02 * band[..., 0].size  # white text on the dark band
    # the audit outcome and the registry describe the labelled pixels, not the generated ones
    assert outcome["detail"]["outputs"][0]["sha256"] == image_sha256(out.images[0]) != image_sha256(before)
    with sa.create_engine(sqlite_url).connect() as connection:
        registered = connection.execute(sa.text("select hash0, hash1, hash2, hash3 from output_fingerprints")).one()
    assert tuple(h % (1 << 64) for h in registered) == fingerprint(out.images[0])


def test_label_then_watermark_then_signature(sqlite_url: str, dev_ca) -> None:
    marking = "{label: {text: AI-generated, position: top-left}}"
    out, outcome = labelled(sqlite_url, marking, [photo("rocket"), photo("chelsea")], signer=make_signer(dev_ca))
    corners = [(label["band"]["x"], label["band"]["y"]) for label in outcome["detail"]["marking"]["label"]]
    assert len(corners) == 2 and all(x == y and 0 < x < 20 for x, y in corners)  # top left, padded from the edges
    for signed, image in zip(out.governance.signed, out.images, strict=True):
        decoded = np.asarray(Image.open(io.BytesIO(signed.data)).convert("RGB"))
        assert (decoded == np.asarray(image)).all() and watermark.detect(decoded) is not None
        with c2pa.Reader("image/png", io.BytesIO(signed.data)) as reader:
            manifest = reader.get_active_manifest()
        governance = {a["label"]: a["data"] for a in manifest["assertions"]}["org.guardrail.governance"]
        assert governance["marking"]["label"][0]["text"] == "AI-generated"
        assert governance["marking"]["label"][0]["band"]["x"] == corners[0][0]
        assert governance["marking"]["watermark"] == watermark.NAME


def test_arrays_are_labelled_in_place_and_text_too_long_is_refused(sqlite_url: str) -> None:
    floats = np.asarray(photo("moon"), np.float32) / 255
    before = floats.copy()
    labelled(sqlite_url, "{watermark: off, label: {text: AI}}", [floats])
    assert (floats != before).any() and (floats[:200] == before[:200]).all()
    policy = guardrail.parse_policy(POLICY + "marking: {label: {text: " + "x" * 120 + ", min_size_pct: 10}}\n")
    with (
        guardrail.Guard(policy=policy, database=sqlite_url) as guard,
        pytest.raises(guardrail.MarkingError, match="does not fit a 512x384 image"),
    ):
        guard.wrap(lambda prompt: [photo("coffee")])("long")


@pytest.mark.skipif(not DEJAVU.is_file(), reason="needs Debian's fonts-dejavu-core")
def test_a_user_font_is_used_and_a_missing_one_refused_at_start(sqlite_url: str, tmp_path: Path) -> None:
    default = photo("coffee")
    labelled(sqlite_url, "{watermark: off, label: {text: Généré par IA}}", [default])
    custom = photo("coffee")
    labelled(sqlite_url, "{watermark: off, label: {text: Généré par IA, font: " + str(DEJAVU) + "}}", [custom])
    assert (np.asarray(default) != np.asarray(custom)).any()  # another typeface drew it
    missing = guardrail.parse_policy(POLICY + f"marking: {{label: {{text: x, font: {tmp_path / 'none.ttf'}}}}}\n")
    with pytest.raises(guardrail.ConfigError, match=r"none\.ttf"):
        guardrail.Guard(policy=missing, database=sqlite_url)


def test_policy_validate_names_a_missing_label_font(tmp_path: Path, capsys) -> None:
    from tests.cli.test_cli import run

    policy = tmp_path / "p.yaml"
    policy.write_text("name: p\nmarking:\n  label:\n    text: AI\n    font: fonts/missing.ttf\n")
    code, _, err = run(capsys, "policy", "validate", str(policy), "--config", str(tmp_path / "none.yaml"))
    flat = " ".join(err.split())
    assert code == 2 and "p.yaml:5:5: marking.label.font: font file 'fonts/missing.ttf' does not exist" in flat


def test_cjk_text_is_drawn_with_a_user_font(sqlite_url: str) -> None:
    """GB 45438 labels are Chinese: with a CJK font the glyphs are drawn, so two different texts give
    two different bands; Pillow's own font has no CJK glyphs and draws the same boxes for both."""
    font = Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc")
    if not font.is_file():
        pytest.fail(f"{font} is missing: run `make test` (it installs Debian's fonts-wqy-microhei)")

    def band(text: str, face: str) -> np.ndarray:
        out, outcome = labelled(sqlite_url, f"{{watermark: off, label: {{text: {text}{face}}}}}", [photo("coffee")])
        drawn = outcome["detail"]["marking"]["label"][0]
        assert drawn["text"] == text
        box = drawn["band"]
        return np.asarray(out.images[0])[box["y"] : box["y"] + box["height"], box["x"] : box["x"] + box["width"]]

    texts = ("人工智能生成", "合成内容标识")
    cjk = [band(text, f", font: {font}") for text in texts]
    assert cjk[0].shape == cjk[1].shape and (cjk[0] != cjk[1]).mean() > 0.05
    boxes = [band(text, "") for text in texts]
    assert boxes[0].shape == boxes[1].shape and (boxes[0] == boxes[1]).all()
