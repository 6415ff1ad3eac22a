import pytest

from guardrail.policy.engine import DEFAULT_DENY_RULE, PROMPT_EMBEDS_RULE, UNCLAMPABLE_RULE, PolicyEngine
from guardrail.policy.load import load_policy, parse_policy
from guardrail.request import GenerationRequest, ModelIdentity
from tests.conftest import DEFAULT_POLICY

SHA_A = "a" * 64
SHA_B = "b" * 64


def engine(text: str) -> PolicyEngine:
    return PolicyEngine(parse_policy(text))


def request(*prompts: str, **fields) -> GenerationRequest:
    return GenerationRequest(prompts=prompts or ("a fox",), **fields)


def test_default_policy_on_a_clean_prompt_only_appends_negatives() -> None:
    decision = PolicyEngine(load_policy(DEFAULT_POLICY)).evaluate(
        request("a watercolor fox", negative_prompts=("blurry",), width=512, height=512, steps=20, guidance=7.5)
    )
    assert decision.effect == "modify"
    assert decision.modified() == {"negative_prompts": ["blurry, nsfw, nudity, gore"]}


def test_deny_overrides_flag_and_modify() -> None:
    policy = engine("""
name: p
rules:
  - {id: flag-fox, effect: flag, prompt: {terms: [fox]}}
  - {id: no-gore, effect: deny, message: no gore, prompt: {terms: [gore]}}
  - {id: steps, effect: modify, limits: {steps: {max: 10}}}
""")
    decision = policy.evaluate(request("a gore fox", steps=50))
    assert decision.effect == "deny"
    assert decision.rule_ids == ("flag-fox", "no-gore")
    assert "no gore" in decision.messages
    assert decision.modifications == ()
    flagged = policy.evaluate(request("a fox", steps=5))
    assert (flagged.effect, flagged.flagged, flagged.rule_ids) == ("allow", True, ("flag-fox",))


def test_every_prompt_of_a_batch_is_judged() -> None:
    policy = engine("name: p\nrules: [{id: g, effect: deny, prompt: {terms: [gore]}}]\n")
    assert policy.evaluate(request("a fox", "a cat")).allowed
    assert not policy.evaluate(request("a fox", "g0re", "a cat")).allowed


def test_negative_prompt_field_is_only_checked_when_asked() -> None:
    policy = engine("""
name: p
rules:
  - {id: pos, effect: deny, prompt: {terms: [tree]}}
  - {id: neg, effect: flag, prompt: {terms: [fox], fields: [negative_prompt]}}
""")
    decision = policy.evaluate(request("a cat", negative_prompts=("fox", "tree")))
    assert decision.rule_ids == ("neg",)


def test_scope_by_user_and_role() -> None:
    policy = engine("""
name: p
rules:
  - {id: staff-only, effect: deny, when: {roles: [staff]}, prompt: {terms: [draft]}}
  - {id: not-reviewers, effect: deny, when: {except_roles: [reviewer]}, prompt: {terms: [nude]}}
  - {id: mallory, effect: deny, when: {users: [mallory]}}
""")
    assert not policy.evaluate(request("a draft", roles=("staff",))).allowed
    assert policy.evaluate(request("a draft", roles=("artist",))).allowed
    assert not policy.evaluate(request("nude study", roles=("artist",))).allowed
    assert policy.evaluate(request("nude study", roles=("artist", "reviewer"))).allowed
    assert policy.evaluate(request("a fox", user="alice")).allowed
    assert policy.evaluate(request("a fox", user="mallory")).rule_ids == ("mallory",)


def test_default_deny_needs_an_allow_grant() -> None:
    policy = engine("name: p\ndefault: deny\nrules: [{id: artists, effect: allow, when: {roles: [artist]}}]\n")
    denied = policy.evaluate(request(roles=("guest",)))
    assert (denied.effect, denied.rule_ids) == ("deny", (DEFAULT_DENY_RULE,))
    assert policy.evaluate(request(roles=("artist",))).effect == "allow"


def test_limits_clamp_to_multiples_of_8_and_within_range() -> None:
    policy = engine("""
name: p
rules:
  - id: clamp
    effect: modify
    limits:
      width: {min: 256, max: 1000}
      height: {min: 256, max: 1000}
      steps: {min: 4, max: 30}
      guidance: {min: 1, max: 12.5}
""")
    decision = policy.evaluate(request(width=2048, height=100, steps=2, guidance=30))
    assert decision.modified() == {"width": 1000 // 8 * 8, "height": 256, "steps": 4, "guidance": 12.5}
    assert decision.effect == "modify"
    assert policy.evaluate(request(width=512, height=512, steps=20, guidance=7)).effect == "allow"


def test_pixel_limit_scales_both_sides() -> None:
    policy = engine("name: p\nrules: [{id: px, effect: modify, limits: {pixels: {max: 262144}}}]\n")
    modified = policy.evaluate(request(width=1024, height=768)).modified()
    assert modified["width"] % 8 == 0 and modified["height"] % 8 == 0
    assert modified["width"] * modified["height"] <= 262144
    assert modified["width"] > modified["height"]


def test_image_count_clamps_per_prompt_or_denies() -> None:
    policy = engine("name: p\nrules: [{id: n, effect: modify, limits: {images: {max: 4}}}]\n")
    assert policy.evaluate(request("a", "b", images_per_prompt=4)).modified() == {"images_per_prompt": 2}
    too_many_prompts = policy.evaluate(request("a", "b", "c", "d", "e"))
    assert (too_many_prompts.effect, too_many_prompts.rule_ids) == ("deny", (UNCLAMPABLE_RULE,))


def test_limits_with_deny_effect() -> None:
    policy = engine("name: p\nrules: [{id: big, effect: deny, limits: {width: {max: 1024}}}]\n")
    decision = policy.evaluate(request(width=2048))
    assert (decision.effect, decision.fired[0].detail) == ("deny", "width=2048 outside [, 1024.0]")
    assert policy.evaluate(request()).allowed  # unknown width: nothing to judge


def test_clamp_that_the_call_cannot_take_is_denied() -> None:
    policy = engine("name: p\nrules: [{id: s, effect: modify, limits: {steps: {max: 10}}}]\n")
    decision = policy.evaluate(request(steps=50, adjustable=frozenset()))
    assert (decision.effect, decision.rule_ids) == ("deny", (UNCLAMPABLE_RULE,))


def test_required_negative_terms_are_appended_once() -> None:
    policy = engine("name: p\nrules: [{id: neg, effect: modify, require_negative: [nsfw, low quality]}]\n")
    decision = policy.evaluate(request("a", "b", negative_prompts=("blurry",)))
    assert decision.modified() == {"negative_prompts": ["blurry, nsfw, low quality", "blurry, nsfw, low quality"]}
    assert policy.evaluate(request(negative_prompts=("NSFW, Low-Quality",))).effect == "allow"
    embeds = policy.evaluate(request(has_negative_prompt_embeds=True))
    assert embeds.effect == "deny"


def test_prompt_embeds_without_text() -> None:
    text = "name: p\nprompt_embeds: {mode}\n"
    embeds = GenerationRequest(has_prompt_embeds=True)
    denied = engine(text.format(mode="deny")).evaluate(embeds)
    assert (denied.effect, denied.rule_ids) == ("deny", (PROMPT_EMBEDS_RULE,))
    assert engine(text.format(mode="flag")).evaluate(embeds).flagged
    assert engine(text.format(mode="allow")).evaluate(embeds).effect == "allow"
    assert engine("name: p\n").evaluate(embeds).effect == "deny"  # the default


@pytest.mark.parametrize(
    ("model", "hashes", "allowed"),
    [
        ("runwayml/sd-1.5", {}, True),
        ("stabilityai/sdxl-base", {}, True),
        ("evil/model", {}, False),
        ("other/model", {}, False),
        ("other/model", {"unet.safetensors": SHA_A}, True),
        ("runwayml/sd-1.5", {"unet.safetensors": SHA_B}, False),
    ],
)
def test_model_lists_by_name_and_hash(model: str, hashes: dict, allowed: bool) -> None:
    policy = engine(f"""
name: p
rules:
  - id: models
    effect: deny
    models: {{allow: ["runwayml/*", "stabilityai/*"], deny: ["evil/*"], allow_sha256: [{SHA_A}], deny_sha256: [{SHA_B}]}}
""")
    identity = ModelIdentity(pipeline_class="X", name_or_path=model, weight_sha256=hashes)
    assert policy.evaluate(request(model=identity)).allowed is allowed


def test_adapter_lists() -> None:
    policy = engine(
        f"name: p\nrules: [{{id: lora, effect: deny, adapters: {{deny: [nsfw-*], deny_sha256: [{SHA_B}]}}}}]\n"
    )

    def with_adapters(*names: str, **hashes: str) -> GenerationRequest:
        return request(model=ModelIdentity(pipeline_class="X", adapters=names, adapter_sha256=hashes))

    assert policy.evaluate(with_adapters()).allowed
    assert policy.evaluate(with_adapters("style")).allowed
    assert not policy.evaluate(with_adapters("nsfw-v2")).allowed
    assert not policy.evaluate(with_adapters("innocent", innocent=SHA_B)).allowed


def test_evaluation_errors_fail_closed() -> None:
    policy = engine("name: p\nrules: [{id: n, effect: modify, limits: {images: {max: 4}}}]\n")
    broken = GenerationRequest(prompts=("a",), images_per_prompt="many")  # type: ignore[arg-type]
    decision = policy.evaluate(broken)
    assert decision.effect == "deny" and decision.errors
