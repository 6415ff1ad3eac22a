"""extends: and environments:, with errors located in the file that holds them."""

from pathlib import Path

import pytest

from guardrail.errors import PolicyError
from guardrail.policy.load import load_policy, policy_files
from tests.conftest import REPO

BASE = """\
name: base
term_lists: {bad: [gore]}
rules:
  - {id: no-bad, effect: deny, prompt: {term_lists: [bad]}}
  - {id: steps, effect: modify, limits: {steps: {max: 50}}}
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


def test_child_extends_and_replaces_rules_by_id(tmp_path: Path) -> None:
    write(tmp_path, "base.yaml", BASE)
    child = write(
        tmp_path,
        "child.yaml",
        """\
name: child
extends: base.yaml
term_lists: {bad: [gore, gory]}
rules:
  - {id: steps, effect: modify, limits: {steps: {max: 20}}}
  - {id: flag-cats, effect: flag, prompt: {terms: [cat]}}
""",
    )
    policy = load_policy(child)
    assert [r.id for r in policy.rules] == ["no-bad", "steps", "flag-cats"]
    assert policy.rules[1].limits.steps.max == 20
    assert policy.term_lists == {"bad": ["gore", "gory"]}
    assert policy.extends is None and policy.environments == {}
    assert policy_files(child) == [child.resolve(), (tmp_path / "base.yaml").resolve()]


def test_environment_overrides_and_version(tmp_path: Path) -> None:
    path = write(tmp_path, "p.yaml", BASE + "environments:\n  prod: {default: deny}\n  dev: {prompt_embeds: allow}\n")
    plain, prod, dev = load_policy(path), load_policy(path, environment="prod"), load_policy(path, environment="dev")
    assert (plain.default, prod.default, dev.prompt_embeds) == ("allow", "deny", "allow")
    assert len({plain.version, prod.version, dev.version}) == 3
    with pytest.raises(PolicyError, match="unknown environment 'qa' \\(defined: prod, dev\\)"):
        load_policy(path, environment="qa")


def test_a_broken_environment_is_reported_even_when_not_chosen(tmp_path: Path) -> None:
    path = write(tmp_path, "p.yaml", BASE + "environments:\n  prod: {default: sometimes}\n")
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    [problem] = info.value.problems
    # located where the environment sets the value, and naming the environment
    assert problem.field == "environments.prod.default" and problem.file == str(path)
    assert problem.line == path.read_text().splitlines().index("  prod: {default: sometimes}") + 1
    assert problem.message.endswith("(with environment 'prod')")


def test_errors_are_located_in_the_file_that_has_them(tmp_path: Path) -> None:
    write(tmp_path, "base.yaml", BASE.replace("effect: deny", "effect: nope"))
    child = write(tmp_path, "child.yaml", "name: child\nextends: base.yaml\n")
    with pytest.raises(PolicyError) as info:
        load_policy(child)
    assert info.value.problems[0].file == str((tmp_path / "base.yaml").resolve())
    assert info.value.problems[0].line == 4
    write(tmp_path, "base.yaml", BASE)
    write(
        tmp_path,
        "child.yaml",
        "name: child\nextends: base.yaml\nrules:\n  - {id: x, effect: deny, prompt: {term_lists: [missing]}}\n",
    )
    with pytest.raises(PolicyError) as info:
        load_policy(child)
    [problem] = info.value.problems
    assert (problem.file, problem.line, problem.field) == (str(child), 4, "rules[0].prompt.term_lists[0]")


def test_extends_cycles_and_missing_parents(tmp_path: Path) -> None:
    a = write(tmp_path, "a.yaml", "name: a\nextends: b.yaml\n")
    write(tmp_path, "b.yaml", "name: b\nextends: a.yaml\n")
    with pytest.raises(PolicyError, match="cycle"):
        load_policy(a)
    lonely = write(tmp_path, "c.yaml", "name: c\nextends: nowhere.yaml\n")
    with pytest.raises(PolicyError, match="file not found"):
        load_policy(lonely)


def test_shipped_example_policy_composes() -> None:
    studio = REPO / "policies" / "examples" / "studio.yaml"
    prod = load_policy(studio, environment="prod")
    assert prod.provenance.required and prod.quotas[0].images == 100
    assert {r.id for r in prod.rules} >= {"no-graphic-violence", "no-competitor-brands", "approved-models"}
