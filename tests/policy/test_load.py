from pathlib import Path

import pytest

from guardrail.errors import PolicyError
from guardrail.policy.load import load_policy, parse_policy
from tests.conftest import DEFAULT_POLICY


def problems(text: str) -> list:
    with pytest.raises(PolicyError) as info:
        parse_policy(text, "p.yaml")
    return info.value.problems


def test_shipped_policy_loads() -> None:
    policy = load_policy(DEFAULT_POLICY)
    assert policy.name == "default"
    assert len(policy.version) == 64


def test_unknown_key_is_located() -> None:
    [problem] = problems("name: p\nrules:\n  - id: a\n    effect: deny\n    promt:\n      terms: [x]\n")
    assert (problem.file, problem.line, problem.column, problem.field) == ("p.yaml", 5, 5, "rules[0].promt")
    assert problem.message == "unknown key"
    assert str(problem).startswith("p.yaml:5:5: rules[0].promt:")


def test_wrong_type_and_bad_enum_are_all_reported() -> None:
    found = problems(
        "name: p\ndefault: maybe\nrules:\n  - id: a\n    effect: explode\n  - id: b\n    effect: deny\n    when: {users: 3}\n"
    )
    fields = {p.field: p.line for p in found}
    assert fields == {"default": 2, "rules[0].effect": 5, "rules[1].when.users": 8}


def test_yaml_syntax_error_has_line_and_column() -> None:
    [problem] = problems("name: p\nrules: [\n  - id: a\n")
    assert problem.line is not None and problem.line >= 3
    assert problem.message.startswith("YAML:")


def test_duplicate_yaml_keys_are_errors() -> None:
    [problem] = problems("name: p\nname: q\n")
    assert problem.line == 2 and "duplicate" in problem.message


def test_invalid_regex_duplicate_ids_and_unknown_term_list() -> None:
    text = """\
name: p
term_lists: {a: [x]}
rules:
  - id: r1
    effect: deny
    prompt: {regex: ['(unclosed']}
  - id: r1
    effect: deny
    prompt:
      term_lists: [a, missing]
"""
    found = {(p.field, p.line): p.message for p in problems(text)}
    assert any(f == "rules[0].prompt.regex[0]" and "invalid regular expression" in m for (f, _), m in found.items())
    assert found[("rules[1].id", 7)].startswith("duplicate rule id 'r1'")
    assert found[("rules[1].prompt.term_lists[1]", 10)] == "unknown term list 'missing'"


def test_rule_shape_errors() -> None:
    found = problems(
        "name: p\nrules:\n"
        "  - {id: a, effect: deny, require_negative: [x]}\n"
        "  - {id: b, effect: modify, prompt: {terms: [x]}}\n"
        "  - {id: c, effect: deny, limits: {steps: {min: 9, max: 1}}}\n"
    )
    messages = {p.field: p.message for p in found}
    assert "must be 'modify'" in messages["rules[0]"]
    assert "needs something to modify" in messages["rules[1]"]
    assert "greater than max" in messages["rules[2].limits.steps"]


def test_empty_missing_and_binary_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"\xff\xfe\x00")
    for path, message in (
        (empty, "empty"),
        (tmp_path / "nope.yaml", "not found"),
        (binary, "not UTF-8"),
        (tmp_path, "not a regular file"),
    ):
        with pytest.raises(PolicyError) as info:
            load_policy(path)
        assert message in str(info.value)


def test_version_is_a_content_hash() -> None:
    a = parse_policy("name: p\nrules: []\n")
    b = parse_policy("# a comment\nname:   p\nrules: []\n")
    c = parse_policy("name: p\ndefault: deny\n")
    assert a.version == b.version != c.version


def test_non_finite_numbers_are_refused() -> None:
    for value in (".nan", ".inf", "-.inf"):
        found = problems(f"name: p\nrules: [{{id: r, effect: modify, limits: {{steps: {{max: {value}}}}}}}]\n")
        assert [(p.field, p.line, p.message) for p in found] == [
            ("rules[0].limits.steps.max", 2, "Input should be a finite number")
        ], value


def test_alias_amplification_is_refused_at_the_alias_in_bounded_memory() -> None:
    import tracemalloc

    from guardrail.policy.load import MAX_NODES

    terms = "[" + ",".join(f"w{i}" for i in range(2000)) + "]"
    rules = "\n".join(f"  - {{id: r{i}, effect: deny, prompt: {{terms: *t}}}}" for i in range(500))  # 1M terms
    bomb = f"name: p\nterm_lists: {{a: &t {terms}}}\nrules:\n{rules}\n"
    laughs = "name: p\ndescription: x\nx0: &a0 [l, l, l, l, l, l, l, l, l, l]\n" + "".join(
        f"x{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]\n" for i in range(1, 9)
    )  # 10^9 leaves
    for text, near in ((bomb, 130), (laughs, 8)):
        tracemalloc.start()
        found = problems(text)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert [p.message for p in found] == [f"YAML: more than {MAX_NODES} nodes once aliases are expanded"]
        line = text.splitlines()[found[0].line - 1]
        assert "*a" in line or "*t" in line  # at the alias that crossed the bound, long before the end
        assert abs(found[0].line - near) <= 5 and peak < 100e6, (found, peak)
    # aliases within the bound still work
    policy = parse_policy("name: p\nterm_lists: {a: &t [x, y]}\nrules: [{id: r, effect: deny, prompt: {terms: *t}}]\n")
    assert policy.rules[0].prompt is not None and policy.rules[0].prompt.terms == ["x", "y"]


def test_deep_nesting_is_a_located_error_not_a_crash() -> None:
    from guardrail.policy.load import MAX_DEPTH

    found = problems("name: p\nterm_lists: {a: " + "[" * 400 + "]" * 400 + "}\n")
    assert [(p.line, p.message) for p in found] == [(2, f"YAML: collections nested more than {MAX_DEPTH} levels deep")]
