"""Hot reload, shadow policies, quotas and replay, against real files and real databases."""

import json
import multiprocessing
import os
import time
from pathlib import Path

import pytest
from PIL import Image

import guardrail
from tests.cli.test_cli import run
from tests.conftest import events

POLICY = """\
name: live
privacy: {{prompts: plaintext}}
rules:
  - {{id: no-{word}, effect: deny, prompt: {{terms: [{word}]}}}}
"""


def gen(prompt: str, num_images_per_prompt: int = 1) -> list:
    return [Image.new("RGB", (4, 4))] * num_images_per_prompt


def write_policy(path: Path, word: str) -> None:
    path.write_text(POLICY.format(word=word))
    stamp = time.time() + 1 + (path.stat().st_mtime_ns % 7)  # a new mtime even on coarse clocks
    os.utime(path, (stamp, stamp))


def test_hot_reload_applies_valid_edits_and_refuses_broken_ones(tmp_path: Path, sqlite_url: str, caplog) -> None:
    path = tmp_path / "live.yaml"
    write_policy(path, "gore")
    with guardrail.Guard(policy=path, database=sqlite_url, reload=True, reload_interval_s=0) as guard:
        pipe = guard.wrap(gen)
        first_version = guard.policy_version
        assert pipe("a cat").governance.allowed
        with pytest.raises(guardrail.PolicyViolation):
            pipe("gore")
        write_policy(path, "cat")
        with pytest.raises(guardrail.PolicyViolation) as info:
            pipe("a cat")
        assert info.value.decision.rule_ids == ("no-cat",)
        assert pipe("gore").governance.allowed
        second_version = guard.policy_version
        path.write_text("name: live\nrules: [{id: x, effect: explode}]\n")
        with caplog.at_level("WARNING", logger="guardrail"):
            assert pipe("gore").governance.allowed  # the broken edit is refused; "no-cat" stays in force
        assert "policy edit refused" in caplog.text
        assert guard.policy_version == second_version != first_version
        reloads = [e for e in events(guard) if e["kind"] == "policy"]
    assert [(e["status"], e["policy_version"]) for e in reloads] == [
        ("applied", second_version),
        ("refused", second_version),
    ]
    assert "rules[0].effect" in reloads[1]["detail"]["problems"][0]


def test_reload_refuses_a_policy_the_guard_cannot_honour(tmp_path: Path, sqlite_url: str) -> None:
    path = tmp_path / "live.yaml"
    write_policy(path, "gore")
    with guardrail.Guard(policy=path, database=sqlite_url, reload=True, reload_interval_s=0) as guard:
        path.write_text(POLICY.format(word="gore").replace("plaintext", "hmac"))  # needs a key this Guard lacks
        os.utime(path, (time.time() + 5, time.time() + 5))
        assert guard.wrap(gen)("a cat").governance.allowed
        assert guard.policy.privacy.prompts == "plaintext"
        [refused] = [e for e in events(guard) if e["kind"] == "policy"]
    assert refused["status"] == "refused" and "no key is configured" in refused["error"]


def test_without_reload_edits_are_ignored(tmp_path: Path, sqlite_url: str) -> None:
    path = tmp_path / "live.yaml"
    write_policy(path, "gore")
    with guardrail.Guard(policy=path, database=sqlite_url) as guard:
        write_policy(path, "cat")
        assert guard.wrap(gen)("a cat").governance.allowed


def test_shadow_policy_disagreements_are_recorded_and_change_nothing(tmp_path: Path, sqlite_url: str) -> None:
    active, candidate = tmp_path / "active.yaml", tmp_path / "candidate.yaml"
    write_policy(active, "gore")
    write_policy(candidate, "cat")
    with guardrail.Guard(policy=active, database=sqlite_url, shadow_policy=candidate) as guard:
        pipe = guard.wrap(gen)
        cat = pipe("a cat")
        dog = pipe("a dog")
        with pytest.raises(guardrail.PolicyViolation) as info:
            pipe("gore")
        assert cat.governance.allowed and dog.governance.allowed
        cat_outcome = events(guard, cat.governance.audit_id)[-1]
        dog_outcome = events(guard, dog.governance.audit_id)[-1]
        gore_outcome = events(guard, info.value.audit_id)[-1]
    assert cat_outcome["detail"]["shadow"]["decision"]["decision"] == "deny"
    assert cat_outcome["detail"]["shadow"]["decision"]["rules"] == ["no-cat"]
    assert "shadow" not in dog_outcome["detail"]
    assert gore_outcome["detail"]["shadow"]["decision"]["decision"] == "allow"


QUOTA_POLICY = """\
name: quota
privacy: {prompts: redacted}
quotas:
  - {id: user-hourly, per: user, window: 1h, images: 5}
  - {id: team-daily, per: role, window: 1d, images: 8, when: {roles: [team]}}
"""


def test_quotas_count_images_and_deny_with_their_own_rule(database: str) -> None:
    with guardrail.Guard(policy=guardrail.parse_policy(QUOTA_POLICY), database=database) as guard:
        pipe = guard.wrap(gen)
        first = pipe("a", user="alice", roles=["team"], num_images_per_prompt=3)
        assert first.governance.decision.quotas == {"user-hourly": 2, "team-daily": 5}
        with pytest.raises(guardrail.PolicyViolation) as info:
            pipe("b", user="alice", roles=["team"], num_images_per_prompt=3)
        assert info.value.decision.rule_ids == ("user-hourly",)
        assert info.value.decision.quotas == {"user-hourly": 2}
        bob = pipe("c", user="bob", roles=["team"], num_images_per_prompt=5)  # his own hour, the team's day
        assert bob.governance.decision.quotas == {"user-hourly": 0, "team-daily": 0}
        with pytest.raises(guardrail.PolicyViolation) as info:
            pipe("d", user="carol", roles=["team"])
        assert info.value.decision.rule_ids == ("team-daily",)
        assert pipe("e", user="carol", roles=["guest"]).governance.decision.quotas == {"user-hourly": 4}
        outcome = events(guard, info.value.audit_id)[-1]
    assert outcome["status"] == "denied" and outcome["detail"]["decision"]["quota_remaining"] == {"team-daily": 0}


def _charge(url: str, count: int, results: "multiprocessing.Queue[bool]") -> None:
    guard = guardrail.Guard(
        policy=guardrail.parse_policy(QUOTA_POLICY.replace("images: 5", "images: 30")), database=url
    )
    pipe = guard.wrap(gen)
    for _ in range(count):
        try:
            pipe("x", user="shared")
            results.put(True)
        except guardrail.PolicyViolation:
            results.put(False)
    guard.close()


def test_quotas_hold_across_processes(database: str) -> None:
    guardrail.Guard(policy=guardrail.parse_policy(QUOTA_POLICY), database=database).close()  # migrate once
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    workers = [context.Process(target=_charge, args=(database, 15, results)) for _ in range(3)]
    for w in workers:
        w.start()
    outcomes = [results.get(timeout=120) for _ in range(45)]
    for w in workers:
        w.join(timeout=60)
    assert outcomes.count(True) == 30 and outcomes.count(False) == 15


def test_replay_reports_what_a_candidate_would_change(tmp_path: Path, sqlite_url: str, capsys) -> None:
    active, candidate = tmp_path / "active.yaml", tmp_path / "candidate.yaml"
    write_policy(active, "gore")
    write_policy(candidate, "cat")
    with guardrail.Guard(policy=active, database=sqlite_url) as guard:
        pipe = guard.wrap(gen)
        pipe("a cat", user="alice")
        pipe("a dog", user="bob")
        with pytest.raises(guardrail.PolicyViolation):
            pipe("gore", user="mallory")
    hmac_policy = tmp_path / "hmac.yaml"
    hmac_policy.write_text(POLICY.format(word="gore").replace("plaintext", "hmac"))
    with guardrail.Guard(policy=hmac_policy, database=sqlite_url, hmac_key=guardrail.HmacKey(b"k" * 32)) as guard:
        guard.wrap(gen)("a secret cat", user="zoe")
    code, out, _ = run(capsys, "policy", "replay", str(candidate), "--database", sqlite_url, "--since", "1h", "--json")
    rows = sorted((r["user"], r["logged"], r["candidate"]) for r in map(json.loads, out.splitlines()))
    assert code == 0 and rows == [("alice", "allow", "deny"), ("mallory", "deny", "allow")]
    code, out, _ = run(capsys, "policy", "replay", str(candidate), "--database", sqlite_url)
    assert "replayed 3: 1 unchanged, 2 changed; 1 not replayable" in out.replace("\n", " ")
    assert run(capsys, "policy", "replay", str(candidate), "--database", sqlite_url, "--since", "yesterday")[0] == 2


def test_explain_and_schema_commands(capsys) -> None:
    from tests.conftest import DEFAULT_POLICY

    code, out, _ = run(capsys, "policy", "explain", str(DEFAULT_POLICY), "--prompt", "a ｇ0re scene", "--json")
    result = json.loads(out)
    assert code == 0
    assert result["texts"][0] == {"field": "prompt", "text": "a ｇ0re scene", "normalised": "a gore scene"}
    assert result["fired"][0]["detail"] == "prompt term 'gore' matched 'gore'"
    assert result["decision"] == "deny" and "no-sexual-content" in result["not_fired"]
    code, out, _ = run(
        capsys, "policy", "explain", str(DEFAULT_POLICY), "--prompt", "a fox", "--role", "adult-content-reviewer"
    )
    assert "out of scope for this user and roles: no-sexual-content" in out.replace("\n", " ")
    code, out, _ = run(capsys, "policy", "schema")
    schema = json.loads(out)
    assert code == 0 and schema["title"] == "Policy" and "rules" in schema["properties"]


@pytest.mark.parametrize(
    "broken",
    [
        "name: live\nterm_lists: {a: " + "[" * 400 + "]" * 400 + "}\n",  # RecursionError in the YAML composer before
        "name: live\nx0: &a0 [l, l, l, l, l, l, l, l, l, l]\n"
        + "".join(f"x{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]\n" for i in range(1, 9)),
        "name: live\nrules: [{id: r, effect: modify, limits: {steps: {max: .nan}}}]\n",
    ],
)
def test_a_hostile_edit_is_refused_audited_and_calls_go_on(tmp_path: Path, sqlite_url: str, broken: str) -> None:
    path = tmp_path / "live.yaml"
    write_policy(path, "gore")
    with guardrail.Guard(policy=path, database=sqlite_url, reload=True, reload_interval_s=0) as guard:
        version = guard.policy_version
        path.write_text(broken)
        os.utime(path, (time.time() + 5, time.time() + 5))
        assert guard.wrap(gen)("a cat").governance.allowed  # the last good policy stays in force
        with pytest.raises(guardrail.PolicyViolation):
            guard.wrap(gen)("gore")
        [refused] = [e for e in events(guard) if e["kind"] == "policy"]
    assert guard.policy_version == version
    assert refused["status"] == "refused" and refused["detail"]["problems"]
