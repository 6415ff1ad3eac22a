"""Protected reference sets and screening, with real photos shipped inside scikit-image (offline)."""

import io
import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

import guardrail
from guardrail.screening.refsets import ReferenceSet, ReferenceSetError
from guardrail.screening.screen import Query, Thresholds, match, screen
from tests.cli.test_cli import run
from tests.conftest import events


def photo(name: str) -> Image.Image:
    import skimage.data

    return Image.fromarray(getattr(skimage.data, name)()).convert("RGB")


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def jpeg_and_resize(image: Image.Image) -> Image.Image:
    buffer = io.BytesIO()
    image.resize((image.width // 2, image.height // 2)).save(buffer, "JPEG", quality=40)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


PROTECTED = ("astronaut", "coffee", "chelsea")
OTHERS = ("camera", "rocket", "horse", "moon", "coins")


@pytest.fixture
def refset(tmp_path: Path) -> ReferenceSet:
    refs = ReferenceSet.create(tmp_path / "refs" / "artworks")
    refs.add((name, f"skimage:{name}", png(photo(name))) for name in PROTECTED)
    return ReferenceSet.open(tmp_path / "refs" / "artworks")


def test_a_reference_matches_after_jpeg_and_resize_and_flip(refset: ReferenceSet) -> None:
    rule = Thresholds(max_distance=10)
    for name in PROTECTED:
        [found] = match(jpeg_and_resize(photo(name)), refset, rule)
        assert found.label == name and found.method == "phash" and found.score <= 10
        [mirrored] = match(ImageOps.mirror(photo(name)), refset, rule)
        assert mirrored.label == name and mirrored.method == "phash-mirror"
    for name in OTHERS:
        assert match(photo(name), refset, rule) == []


def test_captions_over_a_small_low_contrast_image_are_seen_through(tmp_path: Path) -> None:
    """Three white captions cover about a quarter of the 102-px `microaneurysms` photo and move its
    pHash by more than the threshold; the hash of the opened image (thin strokes erased) still matches."""
    from PIL import ImageDraw

    from guardrail.screening.hashes import hamming

    original = photo("microaneurysms")
    captioned = original.copy()
    for x, y in ((5, 10), (20, 45), (10, 80)):
        ImageDraw.Draw(captioned).text((x, y), "SAMPLE © 2026", fill=(255, 255, 255))
    refs = ReferenceSet.create(tmp_path / "small")
    refs.add([("microaneurysms", "skimage", png(original))])
    plain = Query(captioned).hashes[0]
    assert hamming(plain, refs.hashes[:, 0])[0] > 10  # the pHash alone misses it
    [found] = match(captioned, refs, Thresholds(max_distance=10, min_inliers=None))
    assert (found.label, found.method) == ("microaneurysms", "phash") and found.score <= 10
    assert match(photo("camera"), refs, Thresholds(max_distance=10, min_inliers=None)) == []


def crop_and_rotate(image: Image.Image) -> Image.Image:
    w, h = image.size
    return image.crop((int(w * 0.2), int(h * 0.05), int(w * 0.95), int(h * 0.8))).rotate(8, expand=False)


def screenshot(image: Image.Image) -> Image.Image:
    """The image in a window with a title bar and a side panel of other content."""
    from PIL import ImageDraw

    canvas = Image.new("RGB", (image.width + 300, image.height + 120), (236, 236, 236))
    draw = ImageDraw.Draw(canvas)
    draw.rectangle((0, 0, canvas.width, 40), fill=(50, 50, 60))
    canvas.paste(photo("camera").resize((240, 240)), (image.width + 40, 80))
    canvas.paste(image, (20, 80))
    draw.text((30, 12), "viewer - coffee.png", fill=(255, 255, 255))
    return canvas


def test_crops_rotations_and_screenshots_are_found_by_keypoints(refset: ReferenceSet) -> None:
    rule = Thresholds()
    for name in PROTECTED:
        assert [m.method for m in match(crop_and_rotate(photo(name)), refset, Thresholds(min_inliers=None))] == []
        [found] = match(crop_and_rotate(photo(name)), refset, rule)
        assert (found.label, found.method) == (name, "keypoints") and found.score >= rule.min_inliers
        [framed] = match(screenshot(photo(name)), refset, rule)
        assert framed.label == name and framed.method.startswith("keypoints")
        [flipped] = match(ImageOps.mirror(crop_and_rotate(photo(name))), refset, rule)
        assert (flipped.label, flipped.method) == (name, "keypoints-mirror")
    for name in OTHERS:  # other photos, and crops of them, match nothing
        assert match(photo(name), refset, rule) == []
        assert match(crop_and_rotate(photo(name)), refset, rule) == []


def test_sets_persist_and_refuse_bad_files(refset: ReferenceSet, tmp_path: Path) -> None:
    folder = refset.folder
    assert [e.label for e in ReferenceSet.open(folder).entries] == list(PROTECTED)
    assert refset.remove([refset.entries[0].id[:6]]) == 1 and len(ReferenceSet.open(folder).entries) == 2
    meta = json.loads((folder / "refset.json").read_text())
    (folder / "refset.json").write_text(json.dumps({**meta, "fingerprint": "clip-vit-b-32"}))
    with pytest.raises(ReferenceSetError, match="rebuild the set rather than mix"):
        ReferenceSet.open(folder)
    (folder / "refset.json").write_text(json.dumps(meta))
    np.save(folder / "hashes.npy", np.zeros((7, 2), dtype=np.uint64))
    with pytest.raises(ReferenceSetError, match=r"hashes\.npy: uint64 \(7, 2\) does not match 2 entries"):
        ReferenceSet.open(folder)
    np.save(folder / "hashes.npy", refset.hashes)
    (folder / "keypoints.npz").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(ReferenceSetError, match=r"keypoints\.npz: unreadable"):
        ReferenceSet.open(folder)
    (folder / "refset.json").write_text(json.dumps({**meta, "format": 1}))
    with pytest.raises(ReferenceSetError, match="unknown format 1; expected 2"):
        ReferenceSet.open(folder)
    (folder / "refset.json").write_text("{not json")
    with pytest.raises(ReferenceSetError, match="not valid JSON"):
        ReferenceSet.open(folder)


def test_oversized_images_are_refused_before_decoding(refset: ReferenceSet, tmp_path: Path) -> None:
    from guardrail.images import MAX_IMAGE_BYTES, ImageTooLarge

    bomb = io.BytesIO()
    Image.new("1", (9000, 9000)).save(bomb, "PNG")  # tiny file, 81 megapixels once decoded
    with pytest.raises(ImageTooLarge, match="pixel limit"):
        refset.add([("bomb", "bomb.png", bomb.getvalue())])
    huge = tmp_path / "huge.png"
    with huge.open("wb") as handle:
        handle.truncate(MAX_IMAGE_BYTES + 1)  # sparse: no disk used
    with pytest.raises(ImageTooLarge, match=r"huge\.png: \d+ bytes is over"):
        refset.add([("huge", str(huge), huge)])
    assert len(refset.entries) == 3


POLICY = """\
name: screened
privacy: {{prompts: redacted}}
screening:
  sets:
    artworks: {{max_distance: 10, action: {action}}}
"""


def guard_for(refset: ReferenceSet, url: str, action: str, **options) -> guardrail.Guard:
    policy = guardrail.parse_policy(POLICY.format(action=action))
    return guardrail.Guard(policy=policy, database=url, reference_sets={"artworks": refset}, **options)


def test_blocked_output_is_withheld_and_audited(refset: ReferenceSet, sqlite_url: str) -> None:
    with guard_for(refset, sqlite_url, "block") as guard:
        copycat = guard.wrap(lambda prompt: [jpeg_and_resize(photo("coffee"))], model="copycat")
        with pytest.raises(guardrail.PolicyViolation) as info:
            copycat("a cup of coffee")
        assert info.value.decision.rule_ids == ("screening.artworks",)
        assert "resembles protected artworks reference 'coffee'" in info.value.decision.messages[0]
        outcome = events(guard, info.value.audit_id)[-1]
        fine = guard.wrap(lambda prompt: [photo("rocket")])("a rocket")
    assert outcome["status"] == "denied"
    [[evidence]] = outcome["detail"]["screening"]["outputs"]
    assert evidence["label"] == "coffee" and evidence["action"] == "block" and evidence["score"] <= 10
    assert fine.governance.allowed and fine.governance.matches == ((),)


def test_flagged_output_is_returned_marked_and_in_the_manifest(refset: ReferenceSet, sqlite_url: str, dev_ca) -> None:
    from tests.conftest import make_signer

    with guard_for(refset, sqlite_url, "flag", signer=make_signer(dev_ca)) as guard:
        out = guard.wrap(lambda prompt: [ImageOps.mirror(photo("chelsea"))])("a cat")
    assert out.governance.allowed and out.governance.decision.flagged
    [[found]] = out.governance.matches
    assert (found.label, found.method, found.action) == ("chelsea", "phash-mirror", "flag")
    manifest = guardrail.verify_bytes(out.governance.signed[0].data).governance
    assert manifest["screening"]["outputs"][0][0]["label"] == "chelsea"


def test_protected_input_images_are_screened_before_generation(refset: ReferenceSet, sqlite_url: str) -> None:
    calls = []
    with guard_for(refset, sqlite_url, "block") as guard:
        img2img = guard.wrap(lambda prompt, image=None: calls.append(prompt) or [photo("moon")])
        with pytest.raises(guardrail.PolicyViolation) as info:
            img2img("make it blue", image=jpeg_and_resize(photo("astronaut")))
        assert calls == [] and "input image 0 resembles 'astronaut'" in info.value.decision.fired[0].detail
        assert img2img("make it blue", image=photo("horse")).governance.allowed


def test_a_policy_naming_an_unknown_set_is_refused_at_start(refset: ReferenceSet, sqlite_url: str) -> None:
    policy = guardrail.parse_policy(POLICY.format(action="block").replace("artworks:", "logos:"))
    with pytest.raises(guardrail.ConfigError, match="unknown reference set 'logos' \\(configured: artworks\\)"):
        guardrail.Guard(policy=policy, database=sqlite_url, reference_sets={"artworks": refset})


def test_refs_cli(tmp_path: Path, capsys) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in PROTECTED:
        photo(name).save(photos / f"{name}.png")
    root = str(tmp_path / "sets")
    code, out, _ = run(capsys, "refs", "add", "artworks", str(photos), "--root", root)
    assert code == 0 and "added 3 images" in out
    code, out, _ = run(capsys, "refs", "list", "--root", root, "--json")
    assert json.loads(out.splitlines()[0])["references"] == 3
    query = tmp_path / "query.jpg"
    jpeg_and_resize(photo("coffee")).save(query)
    photo("rocket").save(tmp_path / "other.png")
    code, out, _ = run(capsys, "refs", "match", str(query), str(tmp_path / "other.png"), "--root", root, "--json")
    result, other = map(json.loads, out.splitlines())  # JSON lines: one object per image
    assert code == 1 and result["verdict"] == "match" and result["matches"][0]["label"] == "coffee"
    assert other["verdict"] == "no match" and other["image"].endswith("other.png")
    assert run(capsys, "refs", "match", str(tmp_path / "other.png"), "--root", root)[0] == 0
    reference_id = next(
        r["id"]
        for r in map(json.loads, run(capsys, "refs", "list", "artworks", "--root", root, "--json")[1].splitlines())
        if r["label"] == "coffee"
    )
    assert run(capsys, "refs", "remove", "artworks", reference_id, "--root", root)[0] == 0
    assert run(capsys, "refs", "match", str(query), "--root", root)[0] == 0
    assert run(capsys, "refs", "add", "artworks", str(tmp_path / "missing"), "--root", root)[0] == 2
    code, _, err = run(capsys, "refs", "add", "../escape", str(photos), "--root", root)
    assert code == 2 and "'../escape' is not a set name" in " ".join(err.split())
    assert not (tmp_path / "escape").exists()


def test_calls_can_be_queried_by_reference_set(refset: ReferenceSet, sqlite_url: str) -> None:
    from guardrail.audit.query import CallFilter, query_calls

    with guard_for(refset, sqlite_url, "flag") as guard:
        guard.wrap(lambda prompt: [photo("coffee")])("coffee", user="alice")
        guard.wrap(lambda prompt: [photo("rocket")])("rocket", user="bob")
        matched = query_calls(guard.store.engine, CallFilter(reference_set="artworks"))
    assert [c.user for c in matched] == ["alice"]


def test_policy_validate_checks_reference_sets_against_the_config(tmp_path: Path, capsys) -> None:
    config = tmp_path / "guardrail.yaml"
    config.write_text("screening:\n  reference_sets: {artworks: refs/artworks}\n")
    policy = tmp_path / "p.yaml"
    policy.write_text("name: p\nscreening:\n  sets:\n    artworks: {action: flag}\n    logos: {action: block}\n")
    code, _, err = run(capsys, "policy", "validate", str(policy), "--config", str(config))
    assert code == 2  # the Guard's own check: prompts default to HMACs, and this config has no key
    assert "privacy.prompts: prompts are stored as keyed HMACs (privacy.prompts: hmac) but no key" in err.replace(
        "\n", ""
    )
    config.write_text("privacy: {hmac_key_file: hmac.key}\nscreening:\n  reference_sets: {artworks: refs/artworks}\n")
    code, _, err = run(capsys, "policy", "validate", str(policy), "--config", str(config))
    assert code == 2 and "HMAC" not in err
    assert f"{policy}:5:5: screening.sets.logos: unknown reference set 'logos'" in err.replace("\n", "")
    policy.write_text("name: p\nscreening:\n  sets:\n    artworks: {action: flag}\n")
    assert run(capsys, "policy", "validate", str(policy), "--config", str(config))[0] == 0
    policy.write_text("name: p\nscreening:\n  concepts:\n    - {id: c, concepts: [a mouse], min_similarity: 0.9}\n")
    code, _, err = run(capsys, "policy", "validate", str(policy), "--config", str(config))
    message = f"{policy}:3:3: screening.concepts: concept rules need an embedding model with a checkpoint"
    assert code == 2 and message in " ".join(err.split())


def test_large_sets_find_crops_through_the_keypoint_vote(tmp_path: Path, caplog) -> None:
    import random

    from guardrail.screening.screen import CANDIDATES

    rng = random.Random(0)
    refs = ReferenceSet.create(tmp_path / "large")
    padding = []
    for i in range(40):  # other references: patches of photos that are never queried here
        source = photo(("camera", "moon", "page")[i % 3])
        side = rng.randint(96, min(source.size))
        x, y = rng.randint(0, source.width - side), rng.randint(0, source.height - side)
        padding.append((f"patch{i}", "test", png(source.crop((x, y, x + side, y + side)))))
    refs.add([*padding, *((name, name, png(photo(name))) for name in PROTECTED)])
    assert len(refs.entries) > CANDIDATES
    for name in PROTECTED:
        found = match(crop_and_rotate(photo(name)), refs, Thresholds())
        assert [(m.label, m.method) for m in found] == [(name, "keypoints")]
        flipped = match(ImageOps.mirror(crop_and_rotate(photo(name))), refs, Thresholds())
        assert [(m.label, m.method) for m in flipped] == [(name, "keypoints-mirror")]
    for name in ("rocket", "horse", "coins"):
        assert match(crop_and_rotate(photo(name)), refs, Thresholds()) == []
    # on a pool: one image's work split into pieces, or an image per worker; the same matches
    queries = [*(crop_and_rotate(photo(name)) for name in (*PROTECTED, "rocket")), ImageOps.mirror(photo("coffee"))]
    expected = [match(query, refs, Thresholds()) for query in queries]
    with ThreadPoolExecutor(2) as pool:
        for batch in (queries[:1], queries[-1:], queries):
            found = screen(batch, {"large": Thresholds()}, {"large": refs}, each=pool.map)
            assert found == [expected[queries.index(query)] for query in batch]
    [saved] = refs.folder.glob("keypoints-*.faiss")  # the next process loads it instead of building
    again = ReferenceSet.open(refs.folder)
    assert [m.label for m in match(crop_and_rotate(photo("coffee")), again, Thresholds())] == ["coffee"]
    assert list(refs.folder.glob("keypoints-*.faiss")) == [saved]
    loaded = ReferenceSet.open(refs.folder)
    shutil.rmtree(refs.folder)  # the folder cannot be written (gone): the index lives in memory, with a warning
    with caplog.at_level("WARNING", logger="guardrail.screening"):
        assert [m.label for m in match(crop_and_rotate(photo("chelsea")), loaded, Thresholds())] == ["chelsea"]
    assert "could not save the keypoints index" in caplog.text
