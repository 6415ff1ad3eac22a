from pathlib import Path

import pytest

import guardrail
from guardrail.config import load_config


def test_from_config_resolves_paths_against_the_file(tmp_path: Path, monkeypatch) -> None:
    guardrail.init_project(tmp_path / "proj")
    monkeypatch.chdir(tmp_path)  # somewhere else entirely
    with guardrail.Guard.from_config(tmp_path / "proj" / "guardrail.yaml") as guard:
        assert guard.policy.name == "default"
        assert guard.store.url == f"sqlite:///{tmp_path / 'proj' / 'guardrail.db'}"
        assert guard.privacy.mode == "hmac" and guard.privacy.key is not None


def test_config_errors_are_located(tmp_path: Path) -> None:
    config = tmp_path / "guardrail.yaml"
    config.write_text("policy: p.yaml\non_deny: explode\ndatabse: x.db\n")
    with pytest.raises(guardrail.PolicyError) as info:
        load_config(config)
    found = {(p.field, p.line) for p in info.value.problems}
    assert found == {("on_deny", 2), ("databse", 3)}


def test_missing_policy_and_bad_key_fail_at_start(tmp_path: Path) -> None:
    project = guardrail.init_project(tmp_path)
    project.policy.unlink()
    with pytest.raises(guardrail.PolicyError, match="file not found"):
        guardrail.Guard.from_config(project.config)
    guardrail.init_project(tmp_path, force=True)
    project.key.write_text("not hex")
    with pytest.raises(guardrail.ConfigError, match="hex"):
        guardrail.Guard.from_config(project.config)


def test_loose_key_permissions_warn(tmp_path: Path) -> None:
    project = guardrail.init_project(tmp_path)
    project.key.chmod(0o644)
    with pytest.warns(UserWarning, match="readable by others"):
        guardrail.Guard.from_config(project.config).close()


def test_a_guard_is_configured_by_one_settings_object(tmp_path: Path) -> None:
    from guardrail.config import AuditConfig, GuardConfig

    policy = guardrail.parse_policy("name: p\nprivacy: {prompts: redacted}\n")
    settings = GuardConfig(database=str(tmp_path / "a.db"), on_deny="return")
    # keyword arguments are the settings' own fields, sections as models or dicts, validated like the file
    with guardrail.Guard(settings, policy=policy, audit=AuditConfig(checkpoint_every=7)) as guard:
        assert guard.settings.on_deny == "return" and guard.settings.audit.checkpoint_every == 7
        assert guard.wrap(lambda prompt: [])("gore").governance.allowed
    with guardrail.Guard(policy=policy, database=str(tmp_path / "b.db"), audit={"checkpoint_every": 3}) as guard:
        assert guard.settings.audit.checkpoint_every == 3 and guard.settings.database.endswith("b.db")
    with pytest.raises(guardrail.ConfigError, match=r"Guard\(\): databse: unknown option"):
        guardrail.Guard(policy=policy, databse="x.db")
    with pytest.raises(guardrail.ConfigError, match=r"Guard\(\): on_deny: Input should be 'raise' or 'return'"):
        guardrail.Guard(policy=policy, database=str(tmp_path / "c.db"), on_deny="ignore")
    with pytest.raises(guardrail.ConfigError, match="needs a policy"):
        guardrail.Guard(database=str(tmp_path / "d.db"))
