"""SDXL with a ControlNet and LoRAs, guarded: a LoRA loaded through the wrapper is named and hashed
in the audit log and the manifest, the policy's adapter allow-list lets an approved LoRA through and
denies another before the pipeline runs. Runs offline: the SDXL pipeline, its ControlNet and the two
LoRA files are tiny, with random weights, made on the spot (their images are noise).

    python examples/sdxl_controlnet_lora.py
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from pathlib import Path
from typing import Any

import torch

import guardrail
from guardrail.audit.query import call_events
from guardrail.testing import sample_image, tiny_pipeline

workdir = Path(".sdxl-demo")
POLICY = """
name: studio-xl
privacy: {prompts: plaintext}
rules:
  - id: approved-loras
    effect: deny
    message: Only LoRAs the studio approved may be loaded.
    adapters: {allow: [watercolor*], deny: [nsfw-*]}
"""


def sdxl_controlnet() -> Any:
    """A tiny SDXL ControlNet pipeline: SDXL's components and a ControlNet made from its UNet."""
    from diffusers import ControlNetModel, StableDiffusionXLControlNetPipeline

    components = tiny_pipeline("sdxl").components
    torch.manual_seed(0)
    controlnet = ControlNetModel.from_unet(components["unet"], conditioning_embedding_out_channels=(16, 32))
    pipe = StableDiffusionXLControlNetPipeline(**components, controlnet=controlnet)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def lora_file(folder: Path, unet: torch.nn.Module, seed: int) -> Path:
    """A real LoRA for the UNet, made with PEFT and saved by diffusers."""
    from diffusers import StableDiffusionXLPipeline
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    torch.manual_seed(seed)
    unet.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v"]), adapter_name="tmp")
    StableDiffusionXLPipeline.save_lora_weights(
        folder, unet_lora_layers=get_peft_model_state_dict(unet, adapter_name="tmp")
    )
    unet.delete_adapters("tmp")
    return folder


def main() -> None:
    workdir.mkdir(exist_ok=True)
    pipe = sdxl_controlnet()
    watercolor = lora_file(workdir / "watercolor-v2", pipe.unet, 1)
    nsfw = lora_file(workdir / "nsfw-style", pipe.unet, 2)
    with guardrail.Guard(policy=guardrail.parse_policy(POLICY), database=str(workdir / "audit.db")) as guard:
        guarded = guard.wrap(pipe, model="tiny-sdxl-controlnet")
        guarded.load_lora_weights(str(watercolor), adapter_name="watercolor-v2")  # through the wrapper: hashed
        edge_map = sample_image(64)
        out = guarded(
            "a lighthouse, watercolor", image=edge_map, num_inference_steps=2, height=64, width=64, output_type="pil"
        )
        request = call_events(guard.store.engine, out.governance.audit_id)[0]
        model = request["model"]
        print(f"allowed: {len(out.images)} image, adapters {model['adapters']}")
        print(f"  LoRA file SHA-256 logged: {model['adapter_sha256']['watercolor-v2'][:16]}...")
        guarded.load_lora_weights(str(nsfw), adapter_name="nsfw-style")
        try:
            guarded("a lighthouse", image=edge_map, num_inference_steps=2, height=64, width=64)
        except guardrail.PolicyViolation as denied:
            print(f"denied before generation: {list(denied.decision.rule_ids)}: {denied.decision.fired[0].detail}")


if __name__ == "__main__":
    main()
