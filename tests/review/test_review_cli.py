"""`guardrail review` on a project made by `guardrail init --dev-ca`: a call held by a screening hit is
listed, shown with its evidence (the held image beside the reference, keypoints drawn), approved by two
reviewers and fetched signed; the requester's own approval and unknown ids exit 2."""

import json
from pathlib import Path

import pytest
from PIL import Image

import guardrail
from tests.cli.test_cli import run
from tests.review.test_review import photo


@pytest.fixture
def reviewed_project(tmp_path: Path, capsys, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    code, out, _ = run(capsys, "init", "proj", "--dev-ca", "proj/ca")
    assert code == 0, out
    project = tmp_path / "proj"
    photo("coffee", 400).save(project / "cup.png")
    monkeypatch.chdir(project)
    code, out, _ = run(capsys, "refs", "add", "logos", "cup.png", "--label", "coffee cup")
    assert code == 0, out
    config = project / "guardrail.yaml"
    config.write_text(
        config.read_text()
        + "screening:\n  reference_sets:\n    logos: .guardrail/refs/logos\nreview:\n  folder: .guardrail/held\n"
    )
    policy = project / "policies" / "default.yaml"
    policy.write_text(
        policy.read_text() + "\nscreening:\n  sets:\n    logos: {action: review}\nreview: {approvals: 2}\n"
    )
    return project


def test_review_list_show_approve_fetch(reviewed_project: Path, capsys) -> None:
    with guardrail.Guard.from_config(reviewed_project / "guardrail.yaml") as guard:
        out = guard.wrap(lambda prompt, negative_prompt="": [photo("coffee", 512)])(
            "a cup", negative_prompt="nsfw, nudity, gore", user="alice"
        )
    audit_id = out.governance.audit_id
    assert out.governance.pending_review and out.images == []

    code, listed, _ = run(capsys, "review", "list", "--status", "pending", "--json")
    [item] = [json.loads(line) for line in listed.splitlines()]
    assert code == 0 and item["audit_id"] == audit_id and item["requested_by"] == "alice"

    code, shown, err = run(capsys, "review", "show", audit_id[:10], "--evidence", "evidence", "--json")
    assert code == 0, err
    shown_item = json.loads(shown[shown.index("{") :])
    [held, picture] = [Path(p) for p in shown_item["evidence"]]
    with Image.open(held) as image:
        assert held.name.endswith("-held.png") and image.size == (512, 512)
    assert picture.name.endswith(f"-vs-logos-{shown_item['screening']['outputs'][0][0]['reference_id']}.png")
    with Image.open(picture) as image:
        assert image.size[0] > 1000  # the two side by side

    code, _, err = run(capsys, "review", "approve", audit_id, "--reviewer", "alice")
    assert code == 2 and "alice made call" in err
    code, _, err = run(capsys, "review", "approve", "ffffffff", "--reviewer", "bob")
    assert code == 2 and "no call held for review" in err
    code, said, _ = run(capsys, "review", "approve", audit_id, "--reviewer", "bob", "--note", "a cup")
    assert code == 0 and "1 of 2 approvals" in said
    code, _, err = run(capsys, "review", "fetch", audit_id, "released")
    assert code == 2 and "is pending" in err
    code, said, _ = run(capsys, "review", "approve", audit_id, "--reviewer", "carol")
    assert code == 0 and "released 1 images" in said
    code, fetched, _ = run(capsys, "review", "fetch", audit_id, "released")
    [path] = [Path(line) for line in fetched.split()]
    code, verified, err = run(capsys, "verify", str(path), "--config", "guardrail.yaml")
    assert code == 0 and "Trusted" in verified, verified + err
    code, shown, _ = run(capsys, "audit", "show", audit_id)
    assert code == 0 and "carol" in shown and "approved" in shown


def test_audit_erase_of_a_user_deletes_their_held_images(reviewed_project: Path, capsys) -> None:
    with guardrail.Guard.from_config(reviewed_project / "guardrail.yaml") as guard:
        pipe = guard.wrap(lambda prompt, negative_prompt="": [photo("coffee", 512)])
        mine = pipe("a cup", negative_prompt="nsfw, nudity, gore", user="alice").governance.audit_id
        theirs = pipe("a cup", negative_prompt="nsfw, nudity, gore", user="zoe").governance.audit_id
    held = reviewed_project / ".guardrail" / "held"
    assert len(list(held.glob("*.manifest.json"))) == 2
    code, said, _ = run(capsys, "audit", "erase", "--user", "alice", "--reason", "GDPR request")
    assert code == 0 and "and 1 held for review" in said
    assert len(list(held.glob("*.manifest.json"))) == 1
    code, listed, _ = run(capsys, "review", "list", "--json")
    states = {
        item["audit_id"]: (item["status"], (item["decided"] or {}).get("action"))
        for item in map(json.loads, listed.splitlines())
    }
    assert states == {mine: ("rejected", "erase"), theirs: ("pending", None)}
