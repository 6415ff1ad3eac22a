"""The guardrail command, run through its real entry point (errors become exit codes in main())."""

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
import typer.main

from guardrail.cli.main import app, main
from tests.conftest import DEFAULT_POLICY


def run(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        main(list(argv))
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def project(tmp_path: Path, capsys, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    code, out, _ = run(capsys, "init", "proj")
    assert code == 0, out
    return tmp_path / "proj"


def test_init_creates_a_working_setup(project: Path, capsys) -> None:
    assert (project / "guardrail.yaml").is_file()
    assert (project / "policies" / "default.yaml").read_text() == DEFAULT_POLICY.read_text()
    key = project / ".guardrail" / "hmac.key"
    assert key.stat().st_mode & 0o077 == 0
    assert (project / "guardrail.db").is_file()
    secret = key.read_text()
    code, _, err = run(capsys, "init", str(project))
    assert code == 2 and "exists" in err
    assert run(capsys, "init", str(project), "--force")[0] == 0
    assert key.read_text() == secret  # never replaced


def test_policy_validate(tmp_path: Path, capsys) -> None:
    code, out, _ = run(capsys, "policy", "validate", str(DEFAULT_POLICY))
    assert code == 0 and "ok" in out
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: p\nrules:\n  - id: a\n    effect: deny\n    bogus: 1\n")
    code, _, err = run(capsys, "policy", "validate", str(DEFAULT_POLICY), str(bad))
    assert code == 2
    assert f"{bad}:5:5: rules[0].bogus: unknown key" in err.replace("\n", "")


def test_policy_check_json_and_exit_codes(capsys) -> None:
    code, out, _ = run(
        capsys, "policy", "check", str(DEFAULT_POLICY), "--prompt", "a fox", "--param", "steps=80", "--json"
    )
    result = json.loads(out)
    assert code == 0
    assert result["decision"] == "modify"
    assert result["rules"] == ["negative-safety-terms", "size-and-steps"]
    assert result["modified"]["steps"] == 50
    assert set(result) >= {"decision", "rules", "messages", "modified"}
    code, out, _ = run(capsys, "policy", "check", str(DEFAULT_POLICY), "-p", "ｇ0re", "--json")
    assert code == 1 and json.loads(out)["decision"] == "deny"
    code, out, _ = run(
        capsys,
        "policy",
        "check",
        str(DEFAULT_POLICY),
        "-p",
        "nude",
        "--role",
        "adult-content-reviewer",
        "--negative",
        "nsfw, nudity, gore",
    )
    assert code == 0 and "allow" in out
    assert run(capsys, "policy", "check", str(DEFAULT_POLICY), "-p", "x", "--param", "steps=many")[0] == 2
    assert run(capsys, "policy", "check", str(DEFAULT_POLICY), "-p", "x", "--param", "colour=red")[0] == 2
    assert run(capsys, "policy", "check", "missing.yaml", "-p", "x")[0] == 2


def test_audit_list_and_show(project: Path, capsys) -> None:
    import guardrail

    guard = guardrail.Guard.from_config(project / "guardrail.yaml")
    pipe = guard.wrap(lambda prompt, negative_prompt="": [], model="cli-gen")
    audit_id = pipe("a fox", user="alice").governance.audit_id
    with pytest.raises(guardrail.PolicyViolation):
        pipe("gore", user="bob")
    guard.close()
    config = str(project / "guardrail.yaml")
    code, out, _ = run(capsys, "audit", "list", "--config", config, "--json")
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [(r["user"], r["status"]) for r in rows] == [("bob", "denied"), ("alice", "modified")]
    code, out, _ = run(capsys, "audit", "list", "--config", config, "--csv", "--user", "alice")
    [row] = list(csv.DictReader(io.StringIO(out)))
    assert row["call_id"] == audit_id and row["rules"] == "negative-safety-terms"
    code, out, _ = run(capsys, "audit", "list", "--config", config)
    assert code == 0 and "guardrail audit log" in out
    code, out, _ = run(capsys, "audit", "show", audit_id[:10], "--config", config, "--json")
    assert code == 0 and '"kind": "outcome"' in out and "cli-gen" in out
    assert run(capsys, "audit", "show", "ffffffff", "--config", config)[0] == 2
    assert run(capsys, "audit", "list", "--database", "postgresql+psycopg://nobody@127.0.0.1:1/x")[0] == 2


def test_db_commands(tmp_path: Path, capsys) -> None:
    db = str(tmp_path / "a.db")
    code, out, _ = run(capsys, "db", "upgrade", "--database", db)
    from guardrail.audit.migrate import head_revision

    assert code == 0 and head_revision() in out
    code, out, _ = run(capsys, "db", "current", "--database", db)
    assert f"current: {head_revision()}" in out
    code, out, _ = run(capsys, "db", "downgrade", "0001", "--database", db)
    assert code == 0 and "0001" in out
    code, out, _ = run(capsys, "db", "downgrade", "base", "--database", db)
    assert code == 0 and "base" in out
    code, _, err = run(capsys, "audit", "list", "--database", db)
    assert code == 2 and "guardrail db upgrade" in err
    code, _, err = run(capsys, "db", "upgrade", "--config", str(tmp_path / "none.yaml"))
    assert code == 2


def _commands(group: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if hasattr(group, "commands"):
        return [item for name, cmd in group.commands.items() for item in _commands(cmd, f"{prefix} {name}".strip())]
    return [(prefix, group)]


def test_every_command_is_documented_with_an_example(capsys) -> None:
    commands = _commands(typer.main.get_command(app))
    assert {name for name, _ in commands} >= {
        "init",
        "policy validate",
        "policy check",
        "audit list",
        "audit show",
        "db upgrade",
    }
    for name, command in commands:
        assert command.help and "Example: guardrail " in command.help, name
        code, out, _ = run(capsys, *name.split(), "--help")
        assert code == 0 and "Example" in out, name


def test_init_with_dev_ca_then_verify(tmp_path: Path, capsys, monkeypatch) -> None:
    import guardrail
    from guardrail.testing import sample_image

    monkeypatch.chdir(tmp_path)
    code, out, _ = run(capsys, "init", "proj", "--dev-ca", "proj/ca")
    assert code == 0 and "not for production" in out
    assert (
        (tmp_path / "proj" / "ca" / "README.txt").read_text().startswith("guardrail development certificate authority")
    )
    config = tmp_path / "proj" / "guardrail.yaml"
    with guardrail.Guard.from_config(config) as guard:
        out_ = guard.wrap(lambda prompt, negative_prompt="": [sample_image()])(
            "a fox", negative_prompt="nsfw, nudity, gore"
        )
    good = out_.governance.save(0, tmp_path / "good.png")
    bad = tmp_path / "bad.png"
    data = bytearray(good.read_bytes())
    data[len(data) // 2] ^= 1
    bad.write_bytes(bytes(data))
    plain = tmp_path / "plain.png"
    sample_image().save(plain)

    code, out, _ = run(capsys, "verify", str(good), "--config", str(config))
    assert code == 0 and "Trusted" in out and "matches the logged hash" in out
    code, out, _ = run(capsys, "verify", str(good), "--json")  # no anchors: valid, but nobody vouches for the signer
    assert code == 1 and json.loads(out)["state"] == "Valid" and "not trusted" in json.loads(out)["why_not"]
    code, out, _ = run(capsys, "verify", str(good), "--json", "--allow-untrusted")
    assert code == 0 and json.loads(out)["ok"] is True
    code, out, _ = run(capsys, "verify", str(good), str(bad), "--config", str(config), "--json")
    results = [json.loads(chunk) for chunk in out.replace("}\n{", "}\x00{").split("\x00")]
    assert code == 1 and [r["ok"] for r in results] == [True, False]
    assert "assertion.dataHash.mismatch" in results[1]["failures"]
    assert run(capsys, "verify", str(plain))[0] == 1
    other = guardrail.create_dev_ca(tmp_path / "other")
    assert run(capsys, "verify", str(good), "--trust-anchors", str(other.trust_anchors))[0] == 1
    assert run(capsys, "verify", str(tmp_path / "missing.png"))[0] == 2
