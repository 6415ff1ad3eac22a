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
    matcher = TextMatcher([], [(r"\bcat\b", "cat"), (r"(\w)\1{3}", "repeat"), (r"dog$", "dog")])
    assert {h.value for h in matcher.find("a cat")} == {"cat"}
    assert {h.value for h in matcher.find("zzzz")} == {"repeat"}  # backreference: searched on its own
    assert {h.value for h in matcher.find("hot dog")} == {"dog"}
    assert matcher.find("nothing here") == []
    combined = TextMatcher([], [(r"\bcat\b", "cat"), (r"\bdog\b", "dog")])
    assert {h.value for h in combined.find("dog and cat")} == {"cat", "dog"}
