import pytest

from guardrail.policy.text import TextMatcher, normalize

MATCHER = TextMatcher(
    [("gore", "gore"), ("ass", "ass"), ("blood bath", "blood bath"), ("kill", "kill"), ("nude", "nude")],
    [(r"\bprime minister\b", "pm")],
)


def hits(text: str) -> set[str]:
    return {h.value for h in MATCHER.find(text)}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("GORE", {"gore"}),  # case folding
        ("ｇｏｒｅ", {"gore"}),  # NFKC: full-width letters
        ("gоrе", {"gore"}),  # Cyrillic о and е (confusable homoglyphs)
        ("g\u200bo\u200dre", {"gore"}),  # zero-width space and joiner
        ("g\u0301o\u0308re", {"gore"}),  # combining marks
        ("g0r3", {"gore"}),  # leetspeak
        ("a$$", {"ass"}),
        ("k1ll", {"kill"}),
        ("g o r e", {"gore"}),  # spaced letters
        ("a g.o.r.e fox", {"gore"}),  # punctuated letters next to a one-letter word
        ("n-u-d-e", {"nude"}),
        ("a blood-bath", {"blood bath"}),  # multi-word term, punctuation as a word break
        ("the Prime  Minister", {"pm"}),  # regex on the normalised text
    ],
)
def test_obfuscations_are_matched(text: str, expected: set[str]) -> None:
    assert hits(text) == expected


@pytest.mark.parametrize("text", ["a classic painting", "assassin's creed", "embassy at night", "skillful", "gorean"])
def test_whole_words_only(text: str) -> None:
    assert hits(text) == set()


def test_hit_reports_normalised_text() -> None:
    [hit] = MATCHER.find("ｇ0re")
    assert (hit.pattern, hit.matched) == ("gore", "gore")


def test_normalize_is_what_authors_see() -> None:
    assert normalize("Ｇ0RE\u200b  Scene!") == "gore scene"


def test_empty_matcher_finds_nothing() -> None:
    assert TextMatcher().find("anything at all") == []


def test_regex_prefilter_never_hides_a_match() -> None:
    matcher = TextMatcher([], [(r"\bcat\b", "cat"), (r"(z)z{3}", "repeat"), (r"dog$", "dog")])
    assert {h.value for h in matcher.find("a cat")} == {"cat"}
    assert {h.value for h in matcher.find("zzzz")} == {"repeat"}
    assert {h.value for h in matcher.find("hot dog")} == {"dog"}
    assert matcher.find("nothing here") == []
    combined = TextMatcher([], [(r"\bcat\b", "cat"), (r"\bdog\b", "dog")])
    assert {h.value for h in combined.find("dog and cat")} == {"cat", "dog"}


def test_catastrophic_regexes_match_in_linear_time() -> None:
    import time

    from guardrail.policy.engine import PolicyEngine
    from guardrail.policy.load import parse_policy
    from guardrail.request import GenerationRequest

    # exponential in Python's re: 20 a's took 0.5 s, 24 a's 3.4 s; RE2 does not backtrack
    policy = parse_policy(
        "name: p\nrules: [{id: r, effect: deny, prompt: {regex: ['(a+)+$', '(x|x)*y', '(.*a){12}']}}]\n"
    )
    engine = PolicyEngine(policy)
    for size in (24, 10_000, 99_999):
        start = time.perf_counter()
        decision = engine.evaluate(GenerationRequest(prompts=("a" * size + "!",)))
        elapsed = time.perf_counter() - start
        assert decision.effect == "deny" and decision.rule_ids == ("r",)  # '(.*a){12}' matches
        assert elapsed < 2.0, (size, elapsed)  # linear: about 0.2 s for 100,000 characters here
    assert engine.evaluate(GenerationRequest(prompts=("x" * 100_000,))).effect == "allow"
    # past the bound a prompt is not read at all: denied, fail closed
    decision = engine.evaluate(GenerationRequest(prompts=("a",), negative_prompts=("x" * 100_001,)))
    assert decision.rule_ids == ("guardrail.prompt-too-long",) and "100001 characters" in decision.messages[0]


def test_patterns_re2_cannot_match_in_linear_time_are_refused_at_their_line() -> None:
    from guardrail.errors import PolicyError
    from guardrail.policy.load import parse_policy

    text = r"""name: p
rules:
  - id: r
    effect: deny
    prompt: {regex: ['ok', '(\w)\1', 'a(?=b)']}
"""
    try:
        parse_policy(text, "p.yaml")
    except PolicyError as exc:
        found = [(p.line, p.field, p.message) for p in exc.problems]
    else:
        raise AssertionError("accepted")
    assert [(line, field) for line, field, _ in found] == [
        (5, "rules[0].prompt.regex[1]"),
        (5, "rules[0].prompt.regex[2]"),
    ]
    assert all("cannot be matched in linear time" in message for _, _, message in found)
