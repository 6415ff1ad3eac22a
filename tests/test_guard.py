"""The wrapper end to end: real tiny pipelines, the real policy engine, a real SQLite audit log."""

import threading
from pathlib import Path

import pytest
import torch
from PIL import Image

import guardrail
from guardrail.images import image_sha256
from guardrail.privacy import HmacKey
from guardrail.testing import sample_image
from tests.conftest import DEFAULT_POLICY, events

SAFE_NEGATIVE = "nsfw, nudity, gore"


def test_allowed_call_returns_the_pipelines_output_with_governance(guard, pipelines) -> None:
    pipe = guard.wrap(pipelines("txt2img"))
    out = pipe("a watercolor fox", negative_prompt=SAFE_NEGATIVE, user="alice", num_inference_steps=2)
    assert type(out).__name__ == "StableDiffusionPipelineOutput"
    assert isinstance(out.images[0], Image.Image)
    gov = out.governance
    assert gov.decision.effect == "allow" and gov.allowed
    assert gov.policy_name == "default" and gov.policy_version == guard.policy_version
    assert gov.output_sha256 == (image_sha256(out.images[0]),)
    request, outcome = events(guard, gov.audit_id)
    assert (request["kind"], request["status"]) == ("request", "pending")
    assert (outcome["kind"], outcome["status"], outcome["decision"]) == ("outcome", "allowed", "allow")
    assert request["user_id"] == outcome["user_id"] == "alice"
    assert outcome["detail"]["outputs"] == [{"sha256": gov.output_sha256[0]}]
    assert set(outcome["detail"]["durations_ms"]) == {stage.name for stage in guard.pipeline.stages}
    assert outcome["params"]["steps"] == 2


def test_modified_call_runs_with_the_changes(guard, pipelines) -> None:
    seen = {}
    pipe = guard.wrap(pipelines("txt2img"))

    def spy(pipeline, step, timestep, callback_kwargs):
        seen["steps"] = step + 1
        return callback_kwargs

    out = pipe("a fox", user="bob", num_inference_steps=60, height=64, width=64, callback_on_step_end=spy)
    assert out.governance.decision.effect == "modify"
    assert seen["steps"] == 50  # clamped by the default policy's size-and-steps rule
    outcome = events(guard, out.governance.audit_id)[-1]
    assert outcome["status"] == "modified"
    assert outcome["params"]["steps"] == 50
    assert set(outcome["rules"]) == {"negative-safety-terms", "size-and-steps"}


def test_denied_prompt_never_reaches_the_generator(guard) -> None:
    calls = []

    @guard.guarded(model="counting-generator")
    def generate(prompt: str, negative_prompt: str = "") -> list:
        calls.append(prompt)
        return [Image.new("RGB", (8, 8))]

    with pytest.raises(guardrail.PolicyViolation) as info:
        generate("a bl00d bath", user="mallory")
    assert calls == []
    violation = info.value
    assert violation.decision.rule_ids == ("no-graphic-violence",)
    _request, outcome = events(guard, violation.audit_id)
    assert (outcome["status"], outcome["decision"], outcome["rules"]) == ("denied", "deny", ["no-graphic-violence"])
    assert outcome["detail"]["outputs"] == []
    assert generate.__name__ == "generate"


def test_on_deny_return(sqlite_url, hmac_key) -> None:
    with guardrail.Guard(policy=DEFAULT_POLICY, database=sqlite_url, hmac_key=hmac_key, on_deny="return") as guard:
        result = guard.wrap(lambda prompt: [Image.new("RGB", (8, 8))])("gore")
    assert isinstance(result, guardrail.GuardedResult)
    assert result.images == [] and len(result) == 0
    assert result.governance.decision.effect == "deny"


def test_plain_callable_result_behaves_like_its_list(guard) -> None:
    images = [Image.new("RGB", (8, 8), c) for c in ("red", "blue")]
    result = guard.wrap(lambda prompt, negative_prompt="": images, model="my-gan")(
        "a fox", negative_prompt=SAFE_NEGATIVE
    )
    assert list(result) == images and result[1] is images[1] and len(result) == 2
    assert result.governance.output_sha256 == tuple(image_sha256(i) for i in images)
    assert events(guard, result.governance.audit_id)[0]["model_name"] == "my-gan"


@pytest.mark.parametrize("kind", ["img2img", "inpaint", "sdxl", "controlnet", "lcm"])
def test_every_pipeline_kind_is_guarded(guard, pipelines, kind) -> None:
    kwargs = {"num_inference_steps": 2, "negative_prompt": SAFE_NEGATIVE, "generator": torch.Generator().manual_seed(0)}
    kwargs |= {
        "img2img": {"image": sample_image(), "strength": 0.8},
        "inpaint": {"image": sample_image(), "mask_image": sample_image(seed=3)},
        "sdxl": {"height": 64, "width": 64},
        "controlnet": {"image": sample_image()},
        "lcm": {"guidance_scale": 1.0, "height": 64, "width": 64},
    }[kind]
    pipe = guard.wrap(pipelines(kind))
    out = pipe("a fox", user="alice", **kwargs)
    assert out.governance.decision.effect == "allow"
    assert len(out.images) == 1
    request = events(guard, out.governance.audit_id)[0]
    assert request["pipeline_class"] == type(pipelines(kind)).__name__
    assert len(request["inputs"]) == {"img2img": 1, "inpaint": 2, "controlnet": 1}.get(kind, 0)
    with pytest.raises(guardrail.PolicyViolation):
        pipe("a fox", prompt_2="g o r e") if kind == "sdxl" else pipe("g o r e", **kwargs)


def test_prompt_embeds_are_denied_by_default(guard, pipelines) -> None:
    raw = pipelines("txt2img")
    embeds, _ = raw.encode_prompt("anything", "cpu", 1, False)
    with pytest.raises(guardrail.PolicyViolation) as info:
        guard.wrap(raw)(prompt_embeds=embeds, num_inference_steps=2)
    assert info.value.decision.rule_ids == ("guardrail.prompt-embeds",)


def test_pipeline_errors_are_audited_and_reraised(guard, pipelines) -> None:
    pipe = guard.wrap(pipelines("txt2img"))
    with pytest.raises(ValueError, match="divisible by 8"):
        pipe("a fox", height=70, width=64, num_inference_steps=2, negative_prompt=SAFE_NEGATIVE)
    strict = guard.wrap(lambda prompt, negative_prompt="": [], model="strict")
    with pytest.raises(TypeError):
        strict("a fox", negative_prompt=SAFE_NEGATIVE, not_an_argument=1)
    outcomes = [e for e in events(guard) if e["kind"] == "outcome"]
    assert [o["status"] for o in outcomes] == ["error", "error"]
    assert outcomes[0]["error"].startswith("ValueError:")
    assert outcomes[1]["error"].startswith("TypeError:")
    request = events(guard, outcomes[1]["call_id"])[0]
    assert "not_an_argument" in request["params"]["malformed_call"]


def test_attribute_access_passes_through(guard, pipelines) -> None:
    from diffusers import EulerDiscreteScheduler

    raw = pipelines("img2img")
    pipe = guard.wrap(raw)
    assert pipe.unet is raw.unet and pipe.components["vae"] is raw.vae
    assert pipe.to("cpu") is pipe  # chained calls keep the guard
    original = raw.scheduler
    try:
        pipe.scheduler = EulerDiscreteScheduler.from_config(raw.scheduler.config)
        assert isinstance(raw.scheduler, EulerDiscreteScheduler)
    finally:
        raw.scheduler = original
    pipe.enable_attention_slicing()
    pipe.disable_attention_slicing()
    assert pipe.wrapped is raw and "GuardedPipeline" in repr(pipe)


def test_return_dict_false_keeps_the_tuple(guard, pipelines) -> None:
    out = guard.wrap(pipelines("txt2img"))(
        "a fox", return_dict=False, num_inference_steps=2, negative_prompt=SAFE_NEGATIVE
    )
    images, _nsfw = out
    assert isinstance(out, tuple) and out.governance.output_sha256 == (image_sha256(images[0]),)


def test_numpy_output_is_hashed_per_image(guard, pipelines) -> None:
    out = guard.wrap(pipelines("txt2img"))(
        "a fox", output_type="np", num_images_per_prompt=2, num_inference_steps=2, negative_prompt=SAFE_NEGATIVE
    )
    assert out.images.shape[0] == 2
    assert out.governance.output_sha256 == tuple(image_sha256(out.images[i]) for i in range(2))


def test_one_guard_serves_concurrent_calls(guard) -> None:
    def generate(prompt: str, negative_prompt: str = "") -> list:
        return [Image.new("RGB", (8, 8), len(prompt))]

    pipe = guard.wrap(generate)
    results, failures = [], []

    def worker(n: int) -> None:
        try:
            for i in range(10):
                results.append(pipe(f"fox {n} {i}", negative_prompt=SAFE_NEGATIVE, user=f"user{n}").governance.audit_id)
        except Exception as exc:  # pragma: no cover - reported below
            failures.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    rows = events(guard)
    assert len(set(results)) == 80
    assert len(rows) == 160
    assert {r["call_id"] for r in rows if r["kind"] == "outcome"} == set(results)


def test_outcome_that_cannot_be_written_withholds_the_images(guard) -> None:
    def generate_and_break_the_log(prompt: str, negative_prompt: str = "") -> list:
        with guard.store.engine.begin() as connection:
            connection.exec_driver_sql("ALTER TABLE audit_events RENAME TO audit_events_gone")
        return [Image.new("RGB", (8, 8))]

    pipe = guard.wrap(generate_and_break_the_log)
    with pytest.raises(guardrail.AuditWriteError, match="not written after"):
        pipe("a fox", negative_prompt=SAFE_NEGATIVE)


def test_request_that_cannot_be_written_is_never_generated(guard) -> None:
    calls = []
    with guard.store.engine.begin() as connection:
        connection.exec_driver_sql("DROP TABLE audit_events")
    with pytest.raises(guardrail.AuditWriteError):
        guard.wrap(lambda prompt: calls.append(prompt) or [])("a fox")
    assert calls == []


def test_bad_database_fails_at_start(tmp_path: Path, hmac_key: HmacKey) -> None:
    for url in (
        f"sqlite:///{tmp_path}/missing-dir/a.db",
        "postgresql+psycopg://nobody@127.0.0.1:1/none",
        "nonsense://x",
    ):
        with pytest.raises(guardrail.DatabaseUnavailable) as info:
            guardrail.Guard(policy=DEFAULT_POLICY, database=url, hmac_key=hmac_key)
        assert "audit database" in str(info.value) or "database URL" in str(info.value)


def test_schema_check_mode_refuses_an_unmigrated_database(sqlite_url, hmac_key) -> None:
    with pytest.raises(guardrail.DatabaseUnavailable, match="guardrail db upgrade"):
        guardrail.Guard(policy=DEFAULT_POLICY, database=sqlite_url, hmac_key=hmac_key, migrate="check")


def test_hmac_mode_without_a_key_is_refused(sqlite_url, monkeypatch) -> None:
    monkeypatch.delenv("GUARDRAIL_HMAC_KEY", raising=False)
    with pytest.raises(guardrail.ConfigError, match="no key is configured"):
        guardrail.Guard(policy=DEFAULT_POLICY, database=sqlite_url)
    monkeypatch.setenv("GUARDRAIL_HMAC_KEY", "ab" * 32)
    guardrail.Guard(policy=DEFAULT_POLICY, database=sqlite_url).close()


def test_lora_denied_by_hash(sqlite_url, hmac_key, tmp_path, lora_dir) -> None:
    from guardrail.images import file_sha256
    from guardrail.testing import tiny_pipeline

    [weights] = lora_dir.glob("*.safetensors")
    policy = guardrail.parse_policy(
        f"name: p\nprivacy: {{prompts: redacted}}\nrules: [{{id: no-lora, effect: deny, adapters: {{deny_sha256: [{file_sha256(weights)}]}}}}]\n"
    )
    with guardrail.Guard(policy=policy, database=sqlite_url) as guard:
        pipe = guard.wrap(tiny_pipeline("txt2img"))
        pipe.set_progress_bar_config(disable=True)
        assert pipe("a fox", num_inference_steps=1).governance.allowed
        pipe.load_lora_weights(str(lora_dir), adapter_name="mystery")
        with pytest.raises(guardrail.PolicyViolation) as info:
            pipe("a fox", num_inference_steps=1)
        assert info.value.decision.rule_ids == ("no-lora",)
        assert events(guard, info.value.audit_id)[0]["model"]["adapters"] == ["mystery"]


def test_model_weights_hashed_for_hash_lists(sqlite_url, tmp_path) -> None:
    from guardrail.images import file_sha256
    from guardrail.testing import tiny_pipeline

    tiny_pipeline("txt2img").save_pretrained(tmp_path / "model")
    from diffusers import StableDiffusionPipeline

    unet = tmp_path / "model" / "unet" / "diffusion_pytorch_model.safetensors"
    policy = guardrail.parse_policy(
        f"name: p\nprivacy: {{prompts: redacted}}\nrules: [{{id: known, effect: deny, models: {{allow_sha256: [{file_sha256(unet)}]}}}}]\n"
    )
    with guardrail.Guard(policy=policy, database=sqlite_url) as guard:
        pipe = guard.wrap(StableDiffusionPipeline.from_pretrained(tmp_path / "model"))
        pipe.set_progress_bar_config(disable=True)
        out = pipe("a fox", num_inference_steps=1)
        assert out.governance.allowed
        model = events(guard, out.governance.audit_id)[0]["model"]
        assert model["weight_sha256"]["unet/diffusion_pytorch_model.safetensors"] == file_sha256(unet)
        assert model["name_or_path"] == str(tmp_path / "model")


def test_weight_hash_lists_added_by_a_reload_apply_to_pipelines_wrapped_before(tmp_path, sqlite_url) -> None:
    import os
    import time

    from diffusers import StableDiffusionPipeline

    from guardrail.images import file_sha256
    from guardrail.testing import tiny_pipeline

    tiny_pipeline("txt2img").save_pretrained(tmp_path / "model")
    unet = file_sha256(tmp_path / "model" / "unet" / "diffusion_pytorch_model.safetensors")
    policy = tmp_path / "policy.yaml"
    policy.write_text("name: p\nprivacy: {prompts: redacted}\n")
    with guardrail.Guard(policy=policy, database=sqlite_url, reload=True, reload_interval_s=0) as guard:
        pipe = guard.wrap(StableDiffusionPipeline.from_pretrained(tmp_path / "model"))
        pipe.set_progress_bar_config(disable=True)
        assert (
            events(guard, pipe("a fox", num_inference_steps=1).governance.audit_id)[0]["model"]["weight_sha256"] == {}
        )
        policy.write_text(
            f"name: p\nprivacy: {{prompts: redacted}}\nrules: [{{id: known, effect: deny, models: {{deny_sha256: [{unet}]}}}}]\n"
        )
        os.utime(policy, (time.time() + 5, time.time() + 5))
        with pytest.raises(guardrail.PolicyViolation) as info:
            pipe("a fox", num_inference_steps=1)
        assert info.value.decision.rule_ids == ("known",)
