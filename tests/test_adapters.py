"""Reading calls to real tiny diffusers pipelines of every kind into GenerationRequests."""

from pathlib import Path

import torch

from guardrail.adapters import CallAdapter, adapter_for
from guardrail.images import image_sha256
from guardrail.policy.decision import Decision, Modification
from guardrail.testing import sample_image


def read(pipe, *args, **kwargs):
    return adapter_for(pipe).read(args, kwargs, user="u", roles=("r",))


def test_txt2img_resolves_defaults_from_the_pipeline(pipelines) -> None:
    pipe = pipelines("txt2img")
    request = read(pipe, ["a fox", "a cat"], negative_prompt="blurry", generator=torch.Generator().manual_seed(7))
    assert request.prompts == ("a fox", "a cat")
    assert request.negative_prompts == ("blurry",)
    expected = pipe.unet.config.sample_size * pipe.vae_scale_factor
    assert (request.width, request.height) == (expected, expected)
    assert (request.steps, request.guidance, request.images_per_prompt) == (50, 7.5, 1)
    assert request.seeds == (7,)
    assert request.model.pipeline_class == "StableDiffusionPipeline"
    assert request.model.dtype == "float32"
    assert (request.user, request.roles) == ("u", ("r",))


def test_img2img_records_the_input_and_its_size(pipelines) -> None:
    image = sample_image(64)
    request = read(pipelines("img2img"), "a fox", image=image, strength=0.5, num_inference_steps=3)
    [start] = request.input_images
    assert (start.role, start.sha256, start.width, start.height) == ("image", image_sha256(image), 64, 64)
    assert (request.width, request.height, request.steps) == (64, 64, 3)
    assert request.params["strength"] == 0.5


def test_inpaint_records_image_and_mask(pipelines) -> None:
    request = read(pipelines("inpaint"), "a fox", image=sample_image(seed=1), mask_image=sample_image(seed=2))
    assert [i.role for i in request.input_images] == ["image", "mask_image"]
    assert request.input_images[0].sha256 != request.input_images[1].sha256


def test_sdxl_second_prompts_are_judged_too(pipelines) -> None:
    request = read(pipelines("sdxl"), prompt="a fox", prompt_2="in gore", negative_prompt="blurry")
    assert request.prompts == ("a fox", "in gore")
    assert request.model.pipeline_class == "StableDiffusionXLPipeline"


def test_controlnet_image_is_a_control_image(pipelines) -> None:
    request = read(pipelines("controlnet"), "a fox", image=sample_image())
    assert [i.role for i in request.input_images] == ["control_image"]


def test_lcm_few_step_run(pipelines) -> None:
    pipe = pipelines("lcm")
    request = read(pipe, "a fox", num_inference_steps=2, guidance_scale=1.0)
    assert (request.steps, request.guidance) == (2, 1.0)
    assert type(pipe.scheduler).__name__ == "LCMScheduler"


def test_prompt_embeds_without_text_are_marked(pipelines) -> None:
    pipe = pipelines("txt2img")
    embeds, negative = pipe.encode_prompt("a fox", "cpu", 1, True)
    request = read(pipe, prompt_embeds=embeds, negative_prompt_embeds=negative)
    assert request.prompts == ()
    assert request.has_prompt_embeds and request.has_negative_prompt_embeds


def test_malformed_arguments_are_read_as_given() -> None:
    def generate(prompt: str) -> list:
        return []

    request = CallAdapter(generate).read(("a", "b"), {"prompt": "x"}, user=None, roles=())
    assert "malformed_call" in request.params


def test_apply_maps_fields_to_call_arguments(pipelines) -> None:
    adapter = adapter_for(pipelines("txt2img"))
    decision = Decision(
        "modify",
        modifications=(
            Modification("steps", 80, 50, "r"),
            Modification("negative_prompts", [], ["nsfw"], "r"),
            Modification("width", 2048, 1024, "r"),
        ),
    )
    args, kwargs = adapter.apply(("a fox",), {"num_inference_steps": 80, "width": 2048}, decision)
    assert args == ("a fox",)
    assert kwargs == {"num_inference_steps": 50, "negative_prompt": "nsfw", "width": 1024}
    _, batch = adapter.apply(
        (),
        {"prompt": ["a", "b"]},
        Decision("modify", modifications=(Modification("negative_prompts", [], ["n", "n"], "r"),)),
    )
    assert batch["negative_prompt"] == ["n", "n"]


def test_plain_callable_without_width_cannot_be_resized() -> None:
    def generate(prompt: str, num_inference_steps: int = 10) -> list:
        return []

    adapter = CallAdapter(generate, model="my-gan")
    request = adapter.read(("a fox",), {}, user=None, roles=())
    assert request.adjustable == {"steps"}
    assert request.model.name_or_path == "my-gan"
    assert request.steps == 10


def test_lora_loaded_through_the_wrapper_is_named_and_hashed(guard, lora_dir: Path) -> None:
    from guardrail.images import file_sha256
    from guardrail.testing import tiny_pipeline

    pipe = guard.wrap(tiny_pipeline("txt2img"))
    pipe.load_lora_weights(str(lora_dir), adapter_name="watercolor")
    identity = pipe._adapter.model_identity()
    assert identity.adapters == ("watercolor",)
    [weights] = lora_dir.glob("*.safetensors")
    assert identity.adapter_sha256 == {"watercolor": file_sha256(weights)}


def test_quantization_config_is_part_of_the_model_identity(tmp_path) -> None:
    from diffusers import QuantoConfig, StableDiffusionPipeline, UNet2DConditionModel

    from guardrail.testing import tiny_pipeline

    tiny_pipeline("txt2img").save_pretrained(tmp_path)
    unet = UNet2DConditionModel.from_pretrained(
        tmp_path, subfolder="unet", quantization_config=QuantoConfig(weights_dtype="int8")
    )
    pipe = StableDiffusionPipeline.from_pretrained(tmp_path, unet=unet)
    identity = adapter_for(pipe).model_identity()
    assert identity.quantization == {
        "unet": {"quant_method": "quanto", "weights_dtype": "int8", "modules_to_not_convert": None}
    }
    assert identity.name_or_path == str(tmp_path)


def test_a_callables_model_name_is_its_model_not_its_class() -> None:
    from guardrail.adapters import adapter_for

    def make_images(prompt: str) -> list:
        return []

    identity = adapter_for(make_images, model="/srv/models/private-gan").model_identity()
    assert (
        identity.pipeline_class
        == f"{__name__}.test_a_callables_model_name_is_its_model_not_its_class.<locals>.make_images"
    )
    assert identity.name_or_path == "/srv/models/private-gan"
