"""Early abort on latent previews, with a real (tiny, random-weight) diffusers pipeline: a block check
that fires on the preview stops the pipeline at that step, audited with it; one that does not fire
leaves the call as it was; the caller's own step callback still runs."""

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import guardrail
from guardrail.pipeline.preview import latent_map, preview_images
from tests.conftest import events

POLICY = "name: p\nprivacy: {prompts: plaintext}\npreview: {at: [0.5]}\n"
RULE = "classifiers:\n  unsafe: {model: spy, labels: {unsafe: 0.5}, action: block}\n"


class Spy:
    """A classifier function that records what it was shown and scores it as told."""

    def __init__(self, score: float) -> None:
        self.score, self.seen = score, []

    def __call__(self, images: list) -> list[dict[str, float]]:
        self.seen += images
        return [{"unsafe": self.score} for _ in images]


def call(pipe: Any, steps: list[int], **kwargs: Any) -> Any:
    def count(pipeline: Any, step: int, timestep: Any, callback_kwargs: dict) -> dict:
        steps.append(step)
        return callback_kwargs

    return pipe(
        "a fox",
        num_inference_steps=4,
        height=64,
        width=64,
        generator=torch.Generator().manual_seed(3),
        callback_on_step_end=count,
        **kwargs,
    )


def test_a_block_on_the_preview_stops_the_pipeline_at_that_step(sqlite_url: str, pipelines) -> None:
    spy = Spy(0.9)
    policy = guardrail.parse_policy(POLICY + RULE)
    with guardrail.Guard(policy=policy, database=sqlite_url, classifiers={"spy": spy}) as guard:
        steps: list[int] = []
        with pytest.raises(guardrail.PolicyViolation, match=r"classifier\.unsafe") as caught:
            call(guard.wrap(pipelines("txt2img")), steps)
        assert steps == [0]  # the caller's callback ran for step 1; step 2 raised before it, 3 and 4 never ran
        outcome = events(guard, caught.value.audit_id)[-1]
        assert outcome["status"] == "denied" and outcome["detail"]["preview"]["stopped_at"] == 2
        assert "preview at step 2 image 0 unsafe 0.900" in caught.value.decision.fired[0].detail
        assert len(spy.seen) == 1 and spy.seen[0].size == (512, 512)  # the 8x8 latent preview, scaled up


def test_a_preview_that_passes_leaves_the_call_as_it_was(sqlite_url: str, pipelines) -> None:
    spy = Spy(0.1)
    policy = guardrail.parse_policy(POLICY + RULE)
    with guardrail.Guard(policy=policy, database=sqlite_url, classifiers={"spy": spy}) as guard:
        steps: list[int] = []
        out = call(guard.wrap(pipelines("txt2img")), steps, output_type="np")
        assert steps == [0, 1, 2, 3] and out.images.shape == (1, 64, 64, 3)
        assert events(guard, out.governance.audit_id)[-1]["detail"]["preview"] == {"looked_at": [2], "steps": 4}
        # the same pixels as an unguarded run with the same seed: the preview only reads the latents
        plain = pipelines("txt2img")(
            "a fox",
            num_inference_steps=4,
            height=64,
            width=64,
            output_type="np",
            generator=torch.Generator().manual_seed(3),
        )
        assert np.allclose(out.images, plain.images, atol=1e-5)


def test_the_preview_is_matched_against_block_sets_by_phash(sqlite_url: str, pipelines, tmp_path: Path) -> None:
    spy = Spy(0.1)
    policy = guardrail.parse_policy(POLICY + RULE)
    with guardrail.Guard(policy=policy, database=sqlite_url, classifiers={"spy": spy}) as guard:
        call(guard.wrap(pipelines("txt2img")), [])
    seen = spy.seen[0]  # what the latents looked like half way (then the output was classified): protect it
    refs = guardrail.ReferenceSet.create(tmp_path / "protected")
    import io

    buffer = io.BytesIO()
    seen.save(buffer, "PNG")
    refs.add([("half-way fox", "preview.png", buffer.getvalue())])
    protected = guardrail.parse_policy(POLICY + "screening:\n  sets:\n    protected: {action: block}\n")
    with guardrail.Guard(policy=protected, database=sqlite_url, reference_sets={"protected": refs}) as guard:
        steps: list[int] = []
        with pytest.raises(guardrail.PolicyViolation, match=r"screening\.protected") as caught:
            call(guard.wrap(pipelines("txt2img")), steps)
        assert (
            steps == [0]
            and "preview at step 2 image 0 resembles 'half-way fox'" in caught.value.decision.fired[0].detail
        )


def test_the_latent_map_reproduces_what_the_vae_decodes(pipelines) -> None:
    vae = pipelines("txt2img").vae
    weights, bias = latent_map(vae)
    assert weights.shape == (vae.config.latent_channels, 3) and bias.shape == (3,)
    latents = torch.randn((1, vae.config.latent_channels, 8, 8), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        decoded = vae.decode(latents / vae.config.scaling_factor).sample
    expected = torch.nn.functional.adaptive_avg_pool2d((decoded.clamp(-1, 1) + 1) / 2, 8)[0].permute(1, 2, 0).numpy()
    [preview] = preview_images(latents, vae, 8)
    error = np.abs(np.asarray(preview, np.float32) / 255 - expected).mean()
    constant = np.abs(expected - expected.mean(axis=(0, 1))).mean()  # what predicting the mean colour gets
    assert error < constant  # the linear map explains part of what the decoder does


def test_a_local_tiny_decoder_makes_the_previews(sqlite_url: str, pipelines, tmp_path: Path) -> None:
    from diffusers import AutoencoderTiny

    torch.manual_seed(0)
    blocks = (8, 8, 8, 8)
    AutoencoderTiny(
        encoder_block_out_channels=blocks,
        decoder_block_out_channels=blocks,
        num_encoder_blocks=(1, 1, 1, 1),
        num_decoder_blocks=(1, 1, 1, 1),
        latent_channels=4,
    ).save_pretrained(tmp_path / "taesd")
    policy = guardrail.parse_policy(POLICY + RULE)
    seen = {}
    for name, decoder in (("taesd", str(tmp_path / "taesd")), ("linear", None)):
        spy = Spy(0.1)
        with guardrail.Guard(
            policy=policy, database=sqlite_url, classifiers={"spy": spy}, preview_decoder=decoder
        ) as guard:
            call(guard.wrap(pipelines("txt2img")), [])
        seen[name] = np.asarray(spy.seen[0], np.float32)
    assert seen["taesd"].shape == seen["linear"].shape == (512, 512, 3)
    assert not np.array_equal(seen["taesd"], seen["linear"])  # the decoder made this preview, not the map
    with (
        pytest.raises(guardrail.ConfigError, match="preview decoder"),
        guardrail.Guard(
            policy=policy, database=sqlite_url, classifiers={"spy": Spy(0.1)}, preview_decoder=str(tmp_path / "no")
        ) as guard,
    ):
        call(guard.wrap(pipelines("txt2img")), [])
