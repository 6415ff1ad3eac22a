"""Evasion classes each with several strings of their own, exceptions that stop over-blocking, and the
benign set that must never be denied."""

import json

import pytest

from guardrail.policy.engine import PolicyEngine
from guardrail.policy.load import load_policy, parse_policy
from guardrail.policy.text import inflections, normalize
from guardrail.request import GenerationRequest
from tests.cli.test_cli import run
from tests.conftest import DEFAULT_POLICY
from tests.policy.benign import benign_prompts

BLOCKLIST = """\
name: evasion
default: allow
rules:
  - {id: names, effect: deny, prompt: {terms: ["mickey mouse", "dark lord", gore, nude, hentai]}}
"""
ENGINE = PolicyEngine(parse_policy(BLOCKLIST))


def decide(prompt: str):
    return ENGINE.evaluate(GenerationRequest(prompts=(prompt,)))


@pytest.mark.parametrize(
    "prompt",
    [
        # two-word terms as one token: joined, CamelCase, hashtags and handles, inside compounds
        "a mickeymouse plush",
        "MickeyMouse at the beach",
        "a DarkLord on a throne",
        "#darklord fan art",
        "@MickeyMouse official",
        "#MickeyMouseClubhouse poster",
        "the DARKLORD rises",
        "#DarkLordReturns",
        "mickey_mouse sticker",
        "mickey-mouse ears",
        "ｍｉｃｋｅｙｍｏｕｓｅ",
        "mickey\u200bmouse",
        # regular inflections
        "three nudes by a river",
        "gores of red paint",
        "hentais collection",
        "dark lords marching",
        "mickey mouses everywhere",
        "nudings",
        # letter forms NFKC leaves alone: small capitals, modifier letters, turned and stroked letters,
        # enclosed and squared letters, mathematical alphanumerics, regional indicators
        "ɴᴜᴅᴇ",
        "ʜᴇɴᴛᴀɪ art",
        "ᵍᵒʳᵉ",
        "gøre",
        "ǥore",
        "nuɖe",
        "🅝🅤🅓🅔 beach",
        "🄽🅄🄳🄴",
        "🅽🆄🅳🅴",
        "𝖓𝖚𝖉𝖊",
        "𝓰𝓸𝓻𝓮",
        "🇳🇺🇩🇪",
        "ɢᴏʀᴇ",
        "ᴅᴀʀᴋ ʟᴏʀᴅ",
        # combinations an evader would try next
        "#ᴅᴀʀᴋʟᴏʀᴅ",
        "M1ck3yM0us3",
        "n.u.d.e.s",
        "g o r e s",
        "D a r k L o r d",
    ],
)
def test_every_evasion_class_is_denied(prompt: str) -> None:
    assert decide(prompt).effect == "deny", (prompt, normalize(prompt))


@pytest.mark.parametrize(
    "prompt",
    [
        "a classic car",
        "a gorilla in the mist",
        "denuded hillside after a fire",
        "goreng rice",
        "a mouse in a dark room",
        "lord of the flies book cover",
        "the darkest lordship",
        "Mickey's mouse pad",
        "an unforgettable hentaigana scroll",
        "mickeys and mouses",
    ],
)
def test_single_words_stay_whole_words(prompt: str) -> None:
    assert decide(prompt).effect == "allow", prompt


def test_inflections_of_the_last_word() -> None:
    assert set(inflections("gore")) == {"gore", "gores", "goring", "gorings", "goreing", "goreings", "gorees"}
    assert {"parties", "partying"} <= set(inflections("party"))
    assert {"cutting", "cuts"} <= set(inflections("cut"))
    assert set(inflections("dark lord")) >= {"dark lords", "dark lording"}
    assert inflections("x2") == ["x2"]


def test_exact_matching_turns_inflections_off_per_term_per_list_and_per_rule() -> None:
    policy = parse_policy("""\
name: p
term_lists:
  strict: {terms: [shot], match: exact}
rules:
  - {id: per-term, effect: deny, prompt: {terms: [{term: ass, match: exact}, gore]}}
  - {id: per-rule, effect: deny, prompt: {terms: [cut], match: exact}}
  - {id: per-list, effect: deny, prompt: {term_lists: [strict]}}
""")
    engine = PolicyEngine(policy)

    def rules(prompt: str) -> tuple[str, ...]:
        return engine.evaluate(GenerationRequest(prompts=(prompt,))).rule_ids

    assert rules("three asses") == () and rules("an ass") == ("per-term",) and rules("gores") == ("per-term",)
    assert rules("cutting boards") == () and rules("a cut") == ("per-rule",)
    assert rules("shots fired") == () and rules("one shot") == ("per-list",)


def test_exceptions_per_rule_and_per_term_list_and_where_they_stop() -> None:
    policy = parse_policy("""\
name: p
term_lists:
  colours: {terms: [nude], unless: [nude lipstick]}
rules:
  - {id: listed, effect: deny, prompt: {term_lists: [colours]}}
  - {id: own, effect: deny, prompt: {terms: [gore], unless: [gore-tex, al gore]}}
""")
    engine = PolicyEngine(policy)
    decision = engine.evaluate(GenerationRequest(prompts=("NUDE LIPSTICKS and an Al-Gore poster",)))
    assert decision.effect == "allow"
    assert sorted(rule.id for rule in decision.suppressed) == ["listed", "own"]
    assert "inside the exception 'nude lipstick'" in next(r.detail for r in decision.suppressed if r.id == "listed")
    # the exception covers only the phrase: another use of the word still fires, and nothing is suppressed
    decision = engine.evaluate(GenerationRequest(prompts=("Al Gore in a pool of gore",)))
    assert decision.rule_ids == ("own",) and decision.suppressed == ()
    # a list's exceptions hold in every rule that uses the list; a rule's only in that rule
    other = PolicyEngine(parse_policy(BLOCKLIST.replace("gore, nude", "gore")))
    assert other.evaluate(GenerationRequest(prompts=("gore-tex",))).effect == "deny"


def test_explain_shows_the_folded_text_and_what_an_exception_suppressed(capsys) -> None:
    code, out, _ = run(capsys, "policy", "explain", str(DEFAULT_POLICY), "--prompt", "ɴᴜᴅᴇ lipstick swatch", "--json")
    result = json.loads(out)
    assert code == 0 and result["texts"][0]["normalised"] == "nude lipstick swatch"
    assert result["decision"] != "deny"
    [suppressed] = result["suppressed"]
    assert suppressed["id"] == "no-sexual-content" and "'nude lipstick'" in suppressed["detail"]
    code, out, _ = run(capsys, "policy", "explain", str(DEFAULT_POLICY), "--prompt", "Gore-Tex boots")
    assert "suppressed no-graphic-violence: prompt term 'gore' matched 'gore' inside the exception 'gore tex'" in (
        " ".join(out.split())
    )


def test_no_benign_prompt_is_denied_or_flagged_by_the_shipped_policy() -> None:
    engine = PolicyEngine(load_policy(DEFAULT_POLICY))
    prompts = benign_prompts()
    assert len(prompts) >= 2000
    blocked = [
        (prompt, decision.rule_ids)
        for prompt in prompts
        if (decision := engine.evaluate(GenerationRequest(prompts=(prompt,)))).effect == "deny" or decision.flagged
    ]
    assert blocked == []
