"""Content classifiers with real weights: NudeNet's own 320n.onnx (the optional extra) on photos that
scikit-image ships, a small ONNX classifier built here and run by onnxruntime, and plain functions;
through the policy's classifier rules in real guarded calls."""

import io
from pathlib import Path

import numpy as np
import pytest
import skimage.data
from PIL import Image

import guardrail
from guardrail.classify.nudenet import NudeNetClassifier
from guardrail.classify.onnx import OnnxClassifier
from tests.conftest import events

POLICY = "name: c\nprivacy: {prompts: plaintext}\nmarking: {watermark: off}\n"


def photo(name: str) -> Image.Image:
    return Image.fromarray(getattr(skimage.data, name)()).convert("RGB")


def guard_with(database: str, rules: str, **options) -> guardrail.Guard:
    return guardrail.Guard(policy=guardrail.parse_policy(POLICY + rules), database=database, **options)


def test_nudenet_finds_the_face_in_astronaut_and_nothing_in_coffee_as_the_package_does() -> None:
    from nudenet import NudeDetector

    classifier = NudeNetClassifier()
    astronaut, coffee, camera = classifier.classify([photo("astronaut"), photo("coffee"), photo("camera")])
    assert [d.label for d in astronaut] == ["FACE_FEMALE"] and coffee == []
    assert [d.label for d in camera] == ["FACE_MALE"]
    package = NudeDetector()  # the package's own path (bytes in): the same labels, scores and boxes
    for image, ours in ((photo("astronaut"), astronaut), (photo("camera"), camera)):
        buffer = io.BytesIO()
        image.save(buffer, "PNG")
        theirs = package.detect(buffer.getvalue())
        assert [(d["class"], d["box"]) for d in theirs] == [(d.label, list(d.box)) for d in ours]
        assert [d["score"] for d in theirs] == pytest.approx([d.score for d in ours], abs=1e-5)
    assert classifier.identity.startswith("nudenet/320n.onnx@sha256:")


def test_a_flag_rule_returns_the_image_and_records_the_scores(sqlite_url: str, dev_ca) -> None:
    from tests.conftest import make_signer

    rules = "classifiers:\n  faces: {model: nudenet, labels: {FACE_FEMALE: 0.5}, action: flag}\n"
    with guard_with(sqlite_url, rules, signer=make_signer(dev_ca)) as guard:
        out = guard.wrap(lambda prompt: [photo("astronaut"), photo("coffee")])("a portrait")
        assert len(out.images) == 2 and out.governance.decision.flagged
        assert out.governance.rule_ids == ("classifier.faces",)
        [fired] = out.governance.decision.fired
        assert fired.detail.startswith("output image 0 FACE_FEMALE 0.72") and "image 1" not in fired.detail
        recorded = events(guard, out.governance.audit_id)[-1]["detail"]["classifiers"]["outputs"]
        assert [d["label"] for d in recorded[0]["nudenet"]["found"]] == ["FACE_FEMALE"]
        assert recorded[1]["nudenet"]["found"] == []
        check = guardrail.verify_bytes(out.governance.signed[0].data, trust_anchors=dev_ca.trust_anchors.read_text())
        assert check.governance["classifiers"]["outputs"][0]["nudenet"]["found"][0]["label"] == "FACE_FEMALE"


def test_a_block_rule_withholds_the_images(sqlite_url: str) -> None:
    rules = "classifiers:\n  faces: {model: nudenet, labels: {FACE_FEMALE: 0.5, FACE_MALE: 0.5}, action: block}\n"
    with guard_with(sqlite_url, rules) as guard:
        pipe = guard.wrap(lambda prompt: [photo("coffee"), photo("camera")])
        with pytest.raises(guardrail.PolicyViolation, match=r"classifier\.faces") as caught:
            pipe("a cup and a man")
        outcome = events(guard, caught.value.audit_id)[-1]
        assert outcome["status"] == "denied" and "image 1 FACE_MALE" in caught.value.decision.fired[0].detail
        assert guard.wrap(lambda prompt: [photo("coffee")])("a cup").images  # nothing found: returned


def test_blur_changes_only_the_boxes(sqlite_url: str) -> None:
    rules = "classifiers:\n  faces: {model: nudenet, labels: {FACE_FEMALE: 0.5}, action: blur}\n"
    image = photo("astronaut")
    before = np.asarray(image).copy()
    with guard_with(sqlite_url, rules) as guard:
        out = guard.wrap(lambda prompt: [image])("a portrait")
        outcome = events(guard, out.governance.audit_id)[-1]
    [[x, y, w, h]] = outcome["detail"]["classifiers"]["blurred"]["0"]
    after = np.asarray(out.images[0])
    inside = np.zeros(before.shape[:2], bool)
    inside[y : y + h, x : x + w] = True
    assert (after[~inside] == before[~inside]).all()  # every pixel outside the box as it was
    assert np.abs(after[inside].astype(int) - before[inside]).mean() > 5  # the face is blurred away
    assert out.governance.output_sha256[0] == guardrail.images.image_sha256(out.images[0])  # what is returned
    again = NudeNetClassifier().classify([out.images[0]])[0]
    assert not [d for d in again if d.label == "FACE_FEMALE" and d.score >= 0.5]


def test_thresholds_per_role(sqlite_url: str) -> None:
    rules = (
        "classifiers:\n"
        "  faces-guests: {model: nudenet, labels: {FACE_FEMALE: 0.5}, action: block, when: {roles: [guest]}}\n"
        "  faces-others: {model: nudenet, labels: {FACE_FEMALE: 0.9}, action: block, when: {except_roles: [guest]}}\n"
    )
    with guard_with(sqlite_url, rules) as guard:
        pipe = guard.wrap(lambda prompt: [photo("astronaut")])
        with pytest.raises(guardrail.PolicyViolation, match=r"classifier\.faces-guests"):
            pipe("a portrait", user="g", roles=["guest"])
        assert len(pipe("a portrait", user="m", roles=["member"]).images) == 1  # 0.72 < 0.9


def test_a_review_rule_holds_the_images(sqlite_url: str, tmp_path: Path) -> None:
    rules = "classifiers:\n  faces: {model: nudenet, labels: {FACE_FEMALE: 0.5}, action: review}\n"
    with guard_with(sqlite_url, rules, review={"folder": str(tmp_path / "held")}) as guard:
        out = guard.wrap(lambda prompt: [photo("astronaut")])("a portrait", user="alice")
        assert out.images == [] and out.governance.pending_review
        assert guard.reviews.item(out.governance.audit_id).rules[0]["id"] == "classifier.faces"


def tiny_onnx(path: Path) -> Path:
    """A real ONNX image classifier: average colour -> two logits (dark, bright)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights = numpy_helper.from_array(np.array([[-10, -10, -10], [10, 10, 10]], np.float32), "W")
    bias = numpy_helper.from_array(np.array([15, -15], np.float32), "B")
    graph = helper.make_graph(
        [
            helper.make_node("GlobalAveragePool", ["x"], ["pooled"]),
            helper.make_node("Flatten", ["pooled"], ["flat"]),
            helper.make_node("Gemm", ["flat", "W", "B"], ["logits"], transB=1),
        ],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, 32, 32])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["n", 2])],
        [weights, bias],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def test_a_configured_onnx_classifier_from_guardrail_yaml(sqlite_url: str, tmp_path: Path) -> None:
    model = tiny_onnx(tmp_path / "bright.onnx")
    direct = OnnxClassifier(model, ["dark", "bright"], size=32)
    white, black = Image.new("RGB", (64, 64), "white"), Image.new("RGB", (64, 64), "black")
    (w_dark, w_bright), (b_dark, _) = direct.classify([white, black])
    assert w_bright.score > 0.99 and b_dark.score > 0.99 and w_dark.label == "dark"
    config = tmp_path / "guardrail.yaml"
    config.write_text(
        f"database: {sqlite_url}\nprivacy: {{hmac_key_file: null}}\npolicy: p.yaml\n"
        "classifiers:\n  brightness: {kind: onnx, path: bright.onnx, labels: [dark, bright], size: 32}\n"
    )
    (tmp_path / "p.yaml").write_text(
        POLICY + "classifiers:\n  too-bright: {model: brightness, labels: {bright: 0.9}, action: block}\n"
    )
    with guardrail.Guard.from_config(config) as guard:
        with pytest.raises(guardrail.PolicyViolation, match=r"classifier\.too-bright"):
            guard.wrap(lambda prompt: [white])("white")
        assert guard.wrap(lambda prompt: [black])("black").images


def test_a_function_classifies_inputs_before_generation(sqlite_url: str) -> None:
    called = []
    rules = "classifiers:\n  unsafe-inputs: {model: mine, labels: {unsafe: 0.5}, action: block, inputs: true}\n"

    def mine(images: list) -> list[dict[str, float]]:
        return [{"unsafe": 0.9 if np.asarray(image).mean() > 128 else 0.1} for image in images]

    def edit(prompt: str, image) -> list:
        called.append(prompt)
        return [image]

    with guard_with(sqlite_url, rules, classifiers={"mine": mine}) as guard:
        pipe = guard.wrap(edit)
        with pytest.raises(guardrail.PolicyViolation, match=r"classifier\.unsafe-inputs"):
            pipe("edit", image=Image.new("RGB", (64, 64), "white"))
        assert called == []  # denied before generation
        assert pipe("edit", image=Image.new("RGB", (64, 64), "black")).images


def test_unknown_models_and_bad_rules_are_refused_at_start(sqlite_url: str, tmp_path: Path) -> None:
    with pytest.raises(guardrail.ConfigError, match="unknown classifier 'nope'"):
        guard_with(sqlite_url, "classifiers:\n  x: {model: nope, labels: {a: 0.5}}\n")
    with pytest.raises(guardrail.PolicyError, match="an input cannot be blurred"):
        guardrail.parse_policy(
            POLICY + "classifiers:\n  x: {model: nudenet, labels: {a: 0.5}, action: blur, inputs: true}\n"
        )
    with pytest.raises(guardrail.PolicyError, match="less than or equal to 1"):
        guardrail.parse_policy(POLICY + "classifiers:\n  x: {model: nudenet, labels: {a: 1.5}}\n")
    with (
        pytest.raises(guardrail.ConfigError, match="returned the score"),
        guard_with(
            sqlite_url,
            "classifiers:\n  x: {model: bad, labels: {a: 0.5}}\n",
            classifiers={"bad": lambda images: [{"a": 7.0} for _ in images]},
        ) as guard,
    ):
        guard.wrap(lambda prompt: [photo("coffee")])("x")


def test_guardrail_classify_prints_scores_and_what_the_policy_would_do(tmp_path: Path, capsys) -> None:
    import json

    from tests.cli.test_cli import run

    for name in ("astronaut", "coffee"):
        photo(name).save(tmp_path / f"{name}.png")
    policy = tmp_path / "p.yaml"
    policy.write_text(
        POLICY + "classifiers:\n"
        "  faces: {model: nudenet, labels: {FACE_FEMALE: 0.5}, action: block, when: {roles: [guest]}}\n"
        "  faces-flag: {model: nudenet, labels: {FACE_FEMALE: 0.5}, action: flag, when: {except_roles: [guest]}}\n"
    )
    files = [str(tmp_path / "astronaut.png"), str(tmp_path / "coffee.png")]
    code, out, _ = run(capsys, "classify", *files, "--policy", str(policy), "--role", "guest", "--json")
    astronaut, coffee = (json.loads(line) for line in out.splitlines())
    assert code == 1 and astronaut["action"] == "block" and coffee["action"] == "allow"
    assert astronaut["scores"]["nudenet"]["found"][0]["label"] == "FACE_FEMALE"
    assert [rule["id"] for rule in astronaut["fired"]] == ["classifier.faces"]
    code, out, _ = run(capsys, "classify", *files, "--policy", str(policy), "--role", "member")
    assert code == 0 and "flag" in out and "FACE_FEMALE 0.720" in out and "nothing found" in out
    code, _, err = run(capsys, "classify", str(policy), "--policy", str(policy))
    assert code == 2 and "p.yaml" in err  # a file that is no image


def tiny_safety_checker(folder: Path, concept_threshold: float) -> Path:
    """diffusers' safety checker with random weights (a tiny CLIP), saved as a model folder lays it out."""
    import torch
    from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
    from transformers import CLIPConfig, CLIPImageProcessor

    torch.manual_seed(0)
    vision = {"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 2, "num_attention_heads": 4}
    config = CLIPConfig(
        text_config={"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 2, "num_attention_heads": 4},
        vision_config={**vision, "image_size": 32, "patch_size": 4},
        projection_dim=16,
    )
    checker = StableDiffusionSafetyChecker(config).eval()
    with torch.no_grad():
        checker.concept_embeds.normal_()
        checker.special_care_embeds.normal_()
        checker.concept_embeds_weights.fill_(concept_threshold)
        checker.special_care_embeds_weights.fill_(1.0)  # no special-care hit
    checker.save_pretrained(folder / "safety_checker")
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(
        folder / "feature_extractor"
    )
    return folder


def test_the_safety_checker_gives_scores_that_agree_with_its_own_verdicts(tmp_path: Path) -> None:
    import torch
    from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
    from transformers import CLIPImageProcessor

    from guardrail.classify.safety import SafetyCheckerClassifier

    images = [photo(name) for name in ("astronaut", "coffee", "chelsea", "rocket", "camera", "horse")]
    agreed = set()
    for threshold in (-1.0, 0.0, 0.05, 1.0):
        folder = tiny_safety_checker(tmp_path / f"t{threshold}", threshold)
        ours = SafetyCheckerClassifier(folder).classify(images)
        checker = StableDiffusionSafetyChecker.from_pretrained(folder / "safety_checker")
        pixels = CLIPImageProcessor.from_pretrained(folder / "feature_extractor")(images, return_tensors="pt")
        with torch.no_grad():
            _, verdicts = checker(pixels.pixel_values, [np.zeros((2, 2, 3)) for _ in images])
        for found, blacked_out in zip(ours, verdicts, strict=True):
            nsfw = next(d.score for d in found if d.label == "nsfw")
            assert (nsfw > 0.5) == blacked_out and len(found) == 18
            agreed.add(blacked_out)
    assert agreed == {True, False}  # both verdicts were compared


def test_a_shadow_policy_with_a_stricter_classifier_rule_is_recorded(sqlite_url: str) -> None:
    active = guardrail.parse_policy(POLICY + "classifiers:\n  faces: {model: nudenet, labels: {FACE_FEMALE: 0.9}}\n")
    stricter = guardrail.parse_policy(
        POLICY.replace("name: c", "name: candidate")
        + "classifiers:\n  faces: {model: nudenet, labels: {FACE_FEMALE: 0.5}, action: block}\n"
    )
    with guardrail.Guard(policy=active, shadow_policy=stricter, database=sqlite_url) as guard:
        out = guard.wrap(lambda prompt: [photo("astronaut")])("a portrait")
        assert len(out.images) == 1  # the active policy decides
        shadow = events(guard, out.governance.audit_id)[-1]["detail"]["shadow"]
        assert shadow["policy"] == "candidate" and shadow["decision"]["decision"] == "deny"
