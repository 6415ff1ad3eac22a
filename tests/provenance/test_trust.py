"""Provenance as an attacker meets it: untrusted signers, forged governance, tampered parents."""

import json
from pathlib import Path
from typing import Any

import c2pa
import pytest

import guardrail
from guardrail.provenance.manifest import GOVERNANCE_LABEL, TRAINED
from guardrail.testing import sample_image
from tests.cli.test_cli import run
from tests.conftest import events, make_signer

NEGATIVE = "nsfw, nudity, gore"
POLICY = "name: p\nprivacy: {{prompts: redacted}}\nprovenance: {{inputs: {{invalid: {invalid}}}}}\n"


def forged(other_ca: Any, tmp_path: Path, governance: Any) -> Path:
    """An image signed by an unknown CA with a governance assertion of the attacker's choosing."""
    manifest = {
        "claim_generator_info": [{"name": "guardrail", "version": "0.1.0"}],
        "assertions": [
            {
                "label": "c2pa.actions.v2",
                "data": {"actions": [{"action": "c2pa.created", "digitalSourceType": TRAINED}]},
            },
            {"label": GOVERNANCE_LABEL, "data": governance, "created": True},
        ],
    }
    path = tmp_path / "forged.png"
    path.write_bytes(make_signer(other_ca).sign(sample_image(64), manifest).data)
    return path


def test_an_unknown_signer_is_not_ok_without_anchors(other_ca, tmp_path: Path, capsys) -> None:
    path = forged(other_ca, tmp_path, {"policy": {"name": "default"}, "decision": "allow", "audit_id": "0" * 32})
    code, out, _ = run(capsys, "verify", str(path), "--json")
    result = json.loads(out)
    assert code == 1 and result["ok"] is False and "not trusted" in result["why_not"]
    code, out, _ = run(capsys, "verify", str(path), "--allow-untrusted", "--json")
    assert code == 0 and json.loads(out)["ok"] is True
    code, out, _ = run(capsys, "verify", str(path))
    assert code == 1 and "why: the signer is not trusted" in " ".join(out.split())


@pytest.mark.parametrize(
    "governance",
    [{}, {"policy": "x", "decision": 5}, {"policy": {"name": ["x"]}, "audit_id": {"$ne": 1}}, ["a", "list"], "text"],
)
def test_a_malformed_governance_assertion_never_crashes_the_output(
    other_ca, tmp_path: Path, capsys, governance: Any, sqlite_url: str
) -> None:
    path = forged(other_ca, tmp_path, governance)
    guardrail.Guard(
        policy=guardrail.parse_policy("name: p\nprivacy: {prompts: redacted}\n"), database=sqlite_url
    ).close()
    for extra in ((), ("--json",), ("--database", sqlite_url)):
        code, out, err = run(capsys, "verify", str(path), "--allow-untrusted", *extra)
        assert code in (0, 1) and "Traceback" not in err and "Error" not in err, (extra, err)
    code, out, _ = run(capsys, "verify", str(path), "--allow-untrusted")
    assert "governance: policy" in out and "(missing)" in out


def claim_of(data: bytes) -> dict:
    import io

    with c2pa.Reader("image/png", io.BytesIO(data)) as reader:
        detailed = json.loads(reader.detailed_json())
    return detailed["manifests"][detailed["active_manifest"]]["claim"]


def test_guardrails_own_assertions_are_created_by_the_signer(signing_guard) -> None:
    out = signing_guard.wrap(lambda prompt, negative_prompt="": [sample_image(64)])("a fox", negative_prompt=NEGATIVE)
    claim = claim_of(out.governance.signed[0].data)
    created = {item["url"].rsplit("/", 1)[-1] for item in claim.get("created_assertions", [])}
    gathered = {item["url"].rsplit("/", 1)[-1] for item in claim.get("gathered_assertions", [])}
    assert {"c2pa.actions.v2", GOVERNANCE_LABEL} <= created
    assert not {"c2pa.actions.v2", GOVERNANCE_LABEL} & gathered


def png_chunk(kind: bytes, body: bytes) -> bytes:
    import struct
    import zlib

    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def guard_with_anchors(dev_ca: Any, url: str, invalid: str) -> guardrail.Guard:
    provenance = {
        "certificate_chain": str(dev_ca.chain),
        "private_key": str(dev_ca.key),
        "trust_anchors": str(dev_ca.trust_anchors),
    }
    return guardrail.Guard(
        policy=guardrail.parse_policy(POLICY.format(invalid=invalid)), database=url, provenance=provenance
    )


@pytest.mark.parametrize("invalid", ["flag", "deny", "allow"])
def test_input_manifests_are_validated_with_the_anchors_and_decided_by_policy(
    dev_ca, tmp_path: Path, sqlite_url: str, invalid: str
) -> None:
    calls = []
    with guard_with_anchors(dev_ca, sqlite_url, invalid) as guard:
        img2img = guard.wrap(lambda prompt, image=None: calls.append(prompt) or [sample_image(64)])
        first = guard.wrap(lambda prompt: [sample_image(64)])("a fox")
        parent = first.governance.save(0, tmp_path / "parent.png")
        # a parent signed by the Guard's own CA: validated with the configured anchors, trusted
        child = img2img("in winter", image=guardrail.open_image(parent))
        note = events(guard, child.governance.audit_id)[-1]["detail"]["provenance"]["inputs"]
        assert [(n["state"], n["valid"]) for n in note] == [("Trusted", True)]
        assert child.governance.allowed and not child.governance.decision.flagged
        # a tampered parent: a text chunk slipped in after signing (the pixels still decode)
        data = parent.read_bytes()
        end = data.rindex(b"IEND") - 4
        tampered = guardrail.open_image(data[:end] + png_chunk(b"tEXt", b"Comment\x00edited") + data[end:])
        if invalid == "deny":
            with pytest.raises(guardrail.PolicyViolation) as info:
                img2img("in spring", image=tampered)
            decision, audit_id = info.value.decision, info.value.audit_id
            assert calls == ["in winter"]
        else:
            result = img2img("in spring", image=tampered)
            decision, audit_id = result.governance.decision, result.governance.audit_id
        outcome = events(guard, audit_id)[-1]
    [checked] = outcome["detail"]["provenance"]["inputs"]
    assert checked["valid"] is False and "assertion.dataHash.mismatch" in checked["failures"]
    fired = "provenance.input-invalid" in decision.rule_ids
    assert fired is (invalid != "allow") and decision.flagged is (invalid == "flag")
    assert ("provenance.input-invalid" in outcome["rules"]) is (invalid != "allow")


def test_the_manifest_discloses_provider_system_time_and_a_unique_id(dev_ca, sqlite_url: str) -> None:
    """SB 942's latent disclosure, the AI description on the action, a software agent that is never a
    local path, and the CAWG training-and-data-mining assertion, from guardrail.yaml's provenance."""
    import io

    provenance = {
        "certificate_chain": str(dev_ca.chain),
        "private_key": str(dev_ca.key),
        "provider": "Example Studio Ltd",
        "system": {"name": "Example Imagine", "version": "2.1"},
        "training_mining": "notAllowed",
    }
    policy = guardrail.parse_policy("name: p\nprivacy: {prompts: redacted}\n")
    with guardrail.Guard(policy=policy, database=sqlite_url, provenance=provenance) as guard:
        out = guard.wrap(lambda prompt: [sample_image(64), sample_image(64, seed=1)], model="/srv/models/secret-sd")(
            "a fox"
        )
    ids = []
    for signed in out.governance.signed:
        with c2pa.Reader("image/png", io.BytesIO(signed.data)) as reader:
            manifest = reader.get_active_manifest()
        assertions = {a["label"]: a["data"] for a in manifest["assertions"]}
        disclosure = assertions["org.guardrail.disclosure"]
        assert disclosure["provider"] == "Example Studio Ltd" and disclosure["ai_generated"] is True
        assert disclosure["system"] == {"name": "Example Imagine", "version": "2.1"}
        assert disclosure["created"].endswith("+00:00")
        ids.append(disclosure["id"])
        [action] = assertions["c2pa.actions.v2"]["actions"]
        assert action["description"] == "AI-generated image" and action["when"] == disclosure["created"]
        assert action["softwareAgent"] == {"name": "Example Imagine", "version": "2.1"}
        entries = assertions["cawg.training-mining"]["entries"]
        assert entries["cawg.ai_training"] == {"use": "notAllowed"}
        assert "/srv/models" not in json.dumps(action)
    assert ids == [f"urn:guardrail:{out.governance.audit_id}:{i}" for i in range(2)]


def test_without_a_configured_system_the_agent_names_the_pipeline_not_a_local_path(signing_guard, tmp_path) -> None:
    import io

    local = tmp_path / "models" / "my-sd"
    local.mkdir(parents=True)
    out = signing_guard.wrap(lambda prompt, negative_prompt="": [sample_image(64)], model=str(local))(
        "a fox", negative_prompt=NEGATIVE
    )
    with c2pa.Reader("image/png", io.BytesIO(out.governance.signed[0].data)) as reader:
        manifest = reader.get_active_manifest()
    [action] = next(a for a in manifest["assertions"] if a["label"] == "c2pa.actions.v2")["data"]["actions"]
    assert (
        action["softwareAgent"]["name"].startswith("my-sd (") and str(tmp_path) not in action["softwareAgent"]["name"]
    )
    assert action["softwareAgent"]["version"] == guardrail.__version__
