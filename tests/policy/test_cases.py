"""Policy test files, the shipped ones included, and the `guardrail policy test` command."""

import re
from pathlib import Path

import pytest

from guardrail.errors import PolicyError
from guardrail.pipeline import decider
from guardrail.policy.cases import find_case_files, run_case_file
from tests.cli.test_cli import run
from tests.conftest import REPO


def test_shipped_policies_pass_their_tests() -> None:
    files = find_case_files(REPO / "policies")
    assert {f.name for f in files} >= {"default.test.yaml", "studio.test.yaml"}
    results = [r for f in files for r in run_case_file(f, decider())]
    assert results and all(r.passed for r in results), [r for r in results if not r.passed]


def test_failures_name_the_case_line_and_difference(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text("name: p\nrules: [{id: g, effect: deny, prompt: {terms: [gore]}}]\n")
    cases = tmp_path / "p.test.yaml"
    cases.write_text("""\
policy: p.yaml
cases:
  - name: passes
    request: {prompt: gore}
    expect: {decision: deny, rules: [g]}
  - name: fails
    request: {prompt: a fox}
    expect: {decision: deny, rules: [g]}
  - name: bad parameter
    request: {prompt: a fox, params: {colour: 1}}
    expect: {decision: allow}
""")
    passes, fails, bad = run_case_file(cases, decider())
    assert passes.passed and not fails.passed and not bad.passed
    assert fails.line == 6 and fails.problems == ("decision is allow, expected deny", "rules are [], expected ['g']")
    assert "unknown parameter 'colour'" in bad.problems[0]


def test_unusable_test_files_are_errors(tmp_path: Path) -> None:
    cases = tmp_path / "x.test.yaml"
    cases.write_text("policy: p.yaml\ncases:\n  - name: a\n    request: {prompt: x}\n    expect: {decision: maybe}\n")
    with pytest.raises(PolicyError) as info:
        run_case_file(cases, decider())
    assert info.value.problems[0].field == "cases[0].expect.decision"


def test_policy_test_command(tmp_path: Path, capsys) -> None:
    code, out, _ = run(capsys, "policy", "test", str(REPO / "policies"))
    assert code == 0 and re.search(r"\b[1-9]\d* passed, 0 failed", out)
    (tmp_path / "p.yaml").write_text("name: p\n")
    (tmp_path / "p.test.yaml").write_text(
        "policy: p.yaml\ncases:\n  - {name: x, request: {prompt: gore}, expect: {decision: deny}}\n"
    )
    code, out, _ = run(capsys, "policy", "test", str(tmp_path))
    assert code == 1 and "0 passed, 1 failed" in out
    assert run(capsys, "policy", "test", str(tmp_path / "empty-dir-that-does-not-exist"))[0] == 2
