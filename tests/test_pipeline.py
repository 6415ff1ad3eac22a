"""The call as a declared list of stages, and one decide() for the Guard, the CLI, test cases and the shadow."""

import json
import re
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

import guardrail
from guardrail.pipeline import decider
from guardrail.screening.refsets import ReferenceSet
from tests.cli.test_cli import run
from tests.conftest import REPO, events
from tests.screening.test_screening import photo, png

POLICY = """\
name: staged
privacy: {prompts: plaintext}
rules:
  - {id: no-gore, effect: deny, prompt: {terms: [gore]}}
  - {id: cap-steps, effect: modify, limits: {steps: {max: 30}}}
quotas:
  - {id: hourly, per: user, window: 1h, images: 3}
screening:
  sets:
    artworks: {max_distance: 10, action: block}
"""


def generate(prompt: str, num_inference_steps: int = 20) -> list[Any]:
    """A protected photo when asked for coffee, an unprotected one otherwise."""
    return [photo("coffee" if "coffee" in prompt else "rocket")]


@pytest.fixture
def artworks(tmp_path: Path) -> ReferenceSet:
    refs = ReferenceSet.create(tmp_path / "refs" / "artworks")
    refs.add([("coffee", "skimage:coffee", png(photo("coffee")))])
    return ReferenceSet.open(refs.folder)


class Recording:
    """A stage that notes its name before it runs the real one."""

    def __init__(self, stage: Any, ran: list[str]) -> None:
        self.stage, self.name, self.ran = stage, stage.name, ran

    def __call__(self, state: Any) -> Any:
        self.ran.append(self.name)
        return self.stage(state)


def record(guard: guardrail.Guard) -> list[str]:
    ran: list[str] = []
    guard.pipeline.stages = tuple(Recording(s, ran) for s in guard.pipeline.stages)
    guard.pipeline.finish = tuple(Recording(s, ran) for s in guard.pipeline.finish)
    return ran


def test_a_call_runs_the_declared_stages_in_order(sqlite_url: str, artworks: ReferenceSet, dev_ca) -> None:
    from tests.conftest import make_signer

    with guardrail.Guard(
        policy=guardrail.parse_policy(POLICY), database=sqlite_url, reference_sets={"artworks": artworks},
        signer=make_signer(dev_ca),
    ) as guard:  # fmt: skip
        declared = guard.pipeline.names
        ran = record(guard)
        out = guard.wrap(generate)("a rocket", user="alice")
        assert ran == list(declared)
        outcome = events(guard, out.governance.audit_id)[-1]
        assert set(outcome["detail"]["durations_ms"]) == {stage.name for stage in guard.pipeline.stages}

        ran.clear()
        with pytest.raises(guardrail.PolicyViolation):
            guard.wrap(generate)("gore", user="alice")
        # a deny leaves the loop at the stage that denied, and finishes through the one exit
        stop = declared.index("decide") + 1
        assert ran == [*declared[:stop], *(s.name for s in guard.pipeline.finish)]

        ran.clear()
        with pytest.raises(guardrail.PolicyViolation):  # a blocked output: nothing signed, nothing returned
            guard.wrap(generate)("coffee", user="bob")
        stop = declared.index("screen_outputs") + 1
        assert ran == [*declared[:stop], *(s.name for s in guard.pipeline.finish)]


def test_the_readme_flow_is_the_declared_stage_list(sqlite_url: str) -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    block = re.search(r"<!-- stages -->\n```\n(.*?)```", readme, re.S)
    assert block, "README.md has no <!-- stages --> block"
    with guardrail.Guard(
        policy=guardrail.parse_policy("name: p\nprivacy: {prompts: redacted}\n"), database=sqlite_url
    ) as guard:
        names = guard.pipeline.names
    # one line per stage, its name first; indented lines and the finish rule explain
    listed = [line.split()[0] for line in block.group(1).splitlines() if line[:1].isalpha()]
    assert listed == list(names)


def run_calls(guard: guardrail.Guard) -> list[tuple[str, tuple[str, ...], dict[str, Any]]]:
    """allow, modify, deny by rule, blocked output, deny by quota: (effect, rules, outcome detail) each."""
    pipe = guard.wrap(generate)
    results = []
    for prompt, steps in (("a rocket", 20), ("a rocket", 80), ("gore", 20), ("coffee", 20), ("a rocket", 20)):
        try:
            governance = pipe(prompt, user="alice", num_inference_steps=steps).governance
            decision, audit_id = governance.decision, governance.audit_id
        except guardrail.PolicyViolation as exc:
            decision, audit_id = exc.decision, exc.audit_id
        results.append((decision.effect, decision.rule_ids, events(guard, audit_id)[-1]["detail"]))
    return results


def test_a_shadow_identical_to_the_active_policy_never_disagrees(
    tmp_path: Path, sqlite_url: str, artworks: ReferenceSet
) -> None:
    policy = tmp_path / "staged.yaml"
    policy.write_text(POLICY)
    with guardrail.Guard(
        policy=policy, shadow_policy=policy, database=sqlite_url, reference_sets={"artworks": artworks}
    ) as guard:
        results = run_calls(guard)
    assert [(effect, rules) for effect, rules, _ in results] == [
        ("allow", ()),
        ("modify", ("cap-steps",)),
        ("deny", ("no-gore",)),
        ("deny", ("screening.artworks",)),
        ("deny", ("hourly",)),  # three images charged: the shadow read the quota, it did not charge it too
    ]
    assert [detail.get("shadow") for _, _, detail in results] == [None] * 5


def test_a_shadow_that_differs_is_recorded_where_it_differs(
    tmp_path: Path, sqlite_url: str, artworks: ReferenceSet
) -> None:
    active, candidate = tmp_path / "staged.yaml", tmp_path / "candidate.yaml"
    active.write_text(POLICY)
    candidate.write_text(POLICY.replace("images: 3", "images: 100").split("screening:")[0])  # no screening
    with guardrail.Guard(
        policy=active, shadow_policy=candidate, database=sqlite_url, reference_sets={"artworks": artworks}
    ) as guard:
        results = run_calls(guard)
    shadows = [detail.get("shadow", {}).get("decision", {}).get("decision") for _, _, detail in results]
    assert shadows == [None, None, None, "allow", "allow"]
    assert results[4][2]["decision"]["quota_remaining"] == {"hourly": 0}  # the candidate counted nothing


CONCEPTS = """\
name: concepts
privacy: {prompts: redacted}
screening:
  concepts:
    - {id: no-mascot, concepts: ["the studio's mascot"], min_similarity: 0.9999}
"""


@pytest.fixture
def concept_project(tmp_path: Path) -> tuple[Path, Path]:
    policy = tmp_path / "concepts.yaml"
    policy.write_text(CONCEPTS)
    config = tmp_path / "guardrail.yaml"
    config.write_text("screening:\n  embedding: {model: ViT-B-32, random_weights: true}\n")
    return policy, config


def test_policy_check_explain_and_tests_decide_concept_rules_as_the_guard_does(
    concept_project: tuple[Path, Path], tmp_path: Path, capsys
) -> None:
    policy, config = concept_project
    args = ("--prompt", "The studio's mascot", "--config", str(config))
    code, out, _ = run(capsys, "policy", "check", str(policy), *args, "--json")
    result = json.loads(out)
    assert code == 1 and result["decision"] == "deny" and result["rules"] == ["no-mascot"]
    code, out, _ = run(capsys, "policy", "explain", str(policy), *args, "--json")
    assert json.loads(out)["rules"] == ["no-mascot"]
    code, out, _ = run(capsys, "policy", "check", str(policy), "--prompt", "a bowl of fruit", "--config", str(config))
    assert code == 0 and "allow" in out
    # without the embedding model the concept rule cannot be decided: a clear error, not a silent allow
    code, _, err = run(capsys, "policy", "check", str(policy), "--prompt", "x", "--config", str(tmp_path / "none.yaml"))
    assert code == 2 and "concept rules, which need an embedding model" in err
    (tmp_path / "concepts.test.yaml").write_text(
        "policy: concepts.yaml\ncases:\n"
        '  - {name: mascot, request: {prompt: "The studio\'s mascot"}, expect: {decision: deny, rules: [no-mascot]}}\n'
    )
    code, out, _ = run(capsys, "policy", "test", str(tmp_path / "concepts.test.yaml"), "--config", str(config))
    assert code == 0 and "1 passed, 0 failed" in out


def test_guard_evaluate_is_the_guards_decision(concept_project: tuple[Path, Path], sqlite_url: str) -> None:
    from guardrail.screening.embeddings import ImageEmbedder

    policy = guardrail.parse_policy(CONCEPTS.replace("privacy: {prompts: redacted}", QUOTA))
    embedder = ImageEmbedder("ViT-B-32", random_weights=True)
    with guardrail.Guard(policy=policy, database=sqlite_url, embedder=embedder) as guard:
        mascot = guardrail.GenerationRequest(prompts=("The studio's mascot",), user="alice")
        assert guard.evaluate(mascot).rule_ids == ("no-mascot",)
        fruit = guardrail.GenerationRequest(prompts=("fruit",), user="alice")
        for _ in range(2):  # what the quota would say after this call; asking twice charges nothing
            assert guard.evaluate(fruit).allowed and guard.evaluate(fruit).quotas == {"hourly": 0}
        guard.wrap(lambda prompt: [Image.new("RGB", (4, 4))])("fruit", user="alice")
        assert guard.evaluate(fruit).rule_ids == ("hourly",) and not guard.evaluate(fruit).allowed


QUOTA = "privacy: {prompts: redacted}\nquotas: [{id: hourly, per: user, window: 1h, images: 1}]"


def test_policy_check_reads_quotas_without_charging_them(tmp_path: Path, sqlite_url: str, capsys) -> None:
    policy = tmp_path / "quota.yaml"
    policy.write_text(f"name: q\n{QUOTA}\n")
    with guardrail.Guard(policy=policy, database=sqlite_url) as guard:
        guard.wrap(lambda prompt: [Image.new("RGB", (4, 4))])("a fox", user="alice")
    check = ("policy", "check", str(policy), "--prompt", "a fox", "--database", sqlite_url, "--json")
    for _ in range(2):
        code, out, _ = run(capsys, *check, "--user", "bob")
        assert code == 0 and json.loads(out)["quota_remaining"] == {"hourly": 0}  # after it; nothing charged
    code, out, _ = run(capsys, *check, "--user", "alice")
    assert code == 1 and json.loads(out)["rules"] == ["hourly"]
    missing = tmp_path / "missing.db"
    code, out, _ = run(capsys, *check[:-3], "--database", str(missing), "--json")
    assert code == 0 and json.loads(out)["unchecked"] == ["quotas"] and not missing.exists()


def test_test_cases_skip_nothing_the_guard_decides(tmp_path: Path) -> None:
    from guardrail.policy.cases import run_case_file

    (tmp_path / "p.yaml").write_text(CONCEPTS)
    (tmp_path / "p.test.yaml").write_text(
        'policy: p.yaml\ncases:\n  - {name: m, request: {prompt: "The studio\'s mascot"}, expect: {decision: deny}}\n'
    )
    with pytest.raises(guardrail.ConfigError, match="need an embedding model"):
        run_case_file(tmp_path / "p.test.yaml", decider())


def test_a_shadow_the_guard_cannot_decide_is_refused_at_start(sqlite_url: str) -> None:
    active = guardrail.parse_policy("name: active\nprivacy: {prompts: redacted}\n")
    with pytest.raises(guardrail.ConfigError, match="policy 'concepts': concept rules need an embedding model"):
        guardrail.Guard(policy=active, shadow_policy=guardrail.parse_policy(CONCEPTS), database=sqlite_url)
