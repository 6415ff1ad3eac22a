"""guardrail compliance check: a signed, marked, labelled output meets the regimes it can, each missing
mark is named with its rule, and a stripped copy keeps only its watermark."""

import io
import json
from pathlib import Path

import pytest
import skimage.data
from PIL import Image

import guardrail
from guardrail.marking.compliance import REGIMES, check_bytes
from tests.cli.test_cli import run


@pytest.fixture
def outputs(sqlite_url: str, dev_ca, tmp_path: Path) -> dict[str, Path]:
    """One image as the Guard returns it (signed, watermarked, labelled, with the SB 942 fields), one
    without the label and the provider, and a re-encoded copy of the first."""
    provenance = {
        "certificate_chain": str(dev_ca.chain),
        "private_key": str(dev_ca.key),
        "provider": "Example Studio Ltd",
        "system": {"name": "Example Imagine", "version": "2.1"},
    }
    photo = Image.fromarray(skimage.data.coffee()).convert("RGB")
    files = {}
    for name, marking, given in (
        ("full", "marking: {label: {text: AI-generated}}\n", provenance),
        ("bare", "", {k: v for k, v in provenance.items() if k != "provider"}),
    ):
        policy = guardrail.parse_policy("name: p\nprivacy: {prompts: plaintext}\n" + marking)
        with guardrail.Guard(policy=policy, database=sqlite_url, provenance=given) as guard:
            out = guard.wrap(lambda prompt: [photo.copy()])("coffee")
        files[name] = tmp_path / f"{name}.png"
        files[name].write_bytes(out.governance.signed[0].data)
    buffer = io.BytesIO()
    Image.open(files["full"]).convert("RGB").save(buffer, "JPEG", quality=80)
    files["stripped"] = tmp_path / "stripped.jpg"
    files["stripped"].write_bytes(buffer.getvalue())
    return files


def findings(path: Path, regime: str, anchors: str) -> dict[str, bool]:
    result = check_bytes(path.read_bytes(), regime, trust_anchors=anchors)
    assert [f.requirement for f in result.findings] == [r.id for r in REGIMES[regime]]
    return {f.requirement: f.ok for f in result.findings}


def test_each_regime_names_what_is_there_and_what_is_not(outputs, dev_ca) -> None:
    anchors = dev_ca.trust_anchors.read_text()
    assert all(findings(outputs["full"], "ca-sb942", anchors).values())
    assert all(findings(outputs["full"], "cn-gb45438", anchors).values())
    eu = findings(outputs["full"], "eu-art50", anchors)
    assert [k for k, ok in eu.items() if not ok] == ["timestamp"]  # no time-stamping authority configured
    bare = findings(outputs["bare"], "cn-gb45438", anchors)
    assert [k for k, ok in bare.items() if not ok] == ["visible_label", "provider"]
    stripped = findings(outputs["stripped"], "ca-sb942", anchors)
    assert [k for k, ok in stripped.items() if ok] == ["watermark"]
    untrusted = findings(outputs["full"], "ca-sb942", None)  # no anchors: a valid signature is not enough
    assert [k for k, ok in untrusted.items() if not ok] == ["signed_manifest"]


def test_compliance_check_command(outputs, dev_ca, capsys) -> None:
    anchors = str(dev_ca.trust_anchors)
    code, out, _ = run(
        capsys, "compliance", "check", str(outputs["full"]), "--regime", "ca-sb942", "--trust-anchors", anchors
    )
    flat = " ".join(out.split())
    assert code == 0 and "meets ca-sb942" in flat and "provider: Example Studio Ltd" in flat
    code, out, _ = run(
        capsys, "compliance", "check", str(outputs["full"]), str(outputs["stripped"]), "--regime", "eu-art50",
        "--trust-anchors", anchors, "--json",
    )  # fmt: skip
    lines = [json.loads(line) for line in out.splitlines()]
    assert code == 1 and [line["missing"] for line in lines] == [
        ["timestamp"],
        ["signed_manifest", "timestamp", "ai_disclosed"],
    ]
    evidence = {f["requirement"]: f for f in lines[1]["findings"]}
    assert evidence["watermark"]["ok"] and "1.1.2" in evidence["watermark"]["rule"]
    assert evidence["signed_manifest"]["evidence"] == "no C2PA manifest"
    (outputs["full"].parent / "notes.txt").write_text("not an image")
    code, _, err = run(capsys, "compliance", "check", str(outputs["full"].parent / "notes.txt"), "--regime", "eu-art50")
    assert code == 2 and "notes.txt" in err
    assert run(capsys, "compliance", "check", str(outputs["full"]), "--regime", "us")[0] == 2
