"""Public test helpers: tiny, real diffusers pipelines built offline with random weights.

They run the full diffusers code path (tokenizer, text encoder, UNet, scheduler, VAE) on a CPU
in well under a second at 64 px, so tests and the quickstart exercise the real wrapper against
real pipelines without downloading anything. Random weights: the images are noise.
"""

from __future__ import annotations

import functools
import gzip
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

PIPELINE_KINDS = ("txt2img", "img2img", "inpaint", "sdxl", "controlnet", "lcm")


@functools.cache
def clip_tokenizer_files() -> Path:
    """vocab.json and merges.txt for transformers' CLIPTokenizer, derived from open_clip's BPE file.

    open-clip-torch ships the real CLIP vocabulary; a bare CLIPTokenizer() has two tokens and would
    tokenize every prompt the same, silently breaking prompt tests.
    """
    import open_clip.tokenizer as oct

    bpe_path = Path(oct.__file__).with_name("bpe_simple_vocab_16e6.txt.gz")
    with gzip.open(bpe_path) as handle:
        lines = handle.read().decode("utf-8").split("\n")
    merges = [tuple(m.split()) for m in lines[1 : 49152 - 256 - 2 + 1]]
    symbols = list(oct.bytes_to_unicode().values())
    vocab = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    folder = Path(tempfile.mkdtemp(prefix="guardrail-clip-tokenizer-"))
    (folder / "vocab.json").write_text(json.dumps({tok: i for i, tok in enumerate(vocab)}))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n")
    return folder


def _tokenizer() -> Any:
    from transformers import CLIPTokenizer

    folder = clip_tokenizer_files()
    return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=77)


def _text_config(projection_dim: int = 32) -> Any:
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        bos_token_id=49406,
        eos_token_id=49407,
        pad_token_id=49407,
        hidden_size=32,
        intermediate_size=37,
        layer_norm_eps=1e-05,
        num_attention_heads=4,
        num_hidden_layers=2,
        vocab_size=49408,
        projection_dim=projection_dim,
        hidden_act="gelu",
    )


def _vae() -> Any:
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        block_out_channels=[32, 64],
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
        up_block_types=["UpDecoderBlock2D", "UpDecoderBlock2D"],
        latent_channels=4,
        sample_size=64,
        norm_num_groups=32,
    )


def _sd_components(*, in_channels: int = 4, time_cond_proj_dim: int | None = None) -> dict[str, Any]:
    import torch
    from diffusers import DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=1,
        sample_size=32,
        in_channels=in_channels,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        norm_num_groups=32,
        time_cond_proj_dim=time_cond_proj_dim,
    )
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    return {
        "unet": unet,
        "scheduler": scheduler,
        "vae": _vae(),
        "text_encoder": CLIPTextModel(_text_config()),
        "tokenizer": _tokenizer(),
        "safety_checker": None,
        "feature_extractor": None,
        "image_encoder": None,
        "requires_safety_checker": False,
    }


def _sdxl_components() -> dict[str, Any]:
    import torch
    from diffusers import EulerDiscreteScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=1,
        sample_size=32,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        transformer_layers_per_block=(1, 1),
        projection_class_embeddings_input_dim=80,  # 6 * 8 + 32 (pooled text embedding)
        cross_attention_dim=64,
        norm_num_groups=32,
    )
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085, beta_end=0.012, steps_offset=1, beta_schedule="scaled_linear", timestep_spacing="leading"
    )
    return {
        "unet": unet,
        "scheduler": scheduler,
        "vae": _vae(),
        "text_encoder": CLIPTextModel(_text_config()),
        "tokenizer": _tokenizer(),
        "text_encoder_2": CLIPTextModelWithProjection(_text_config()),
        "tokenizer_2": _tokenizer(),
        "image_encoder": None,
        "feature_extractor": None,
    }


def _controlnet() -> Any:
    import torch
    from diffusers import ControlNetModel

    torch.manual_seed(0)
    return ControlNetModel(
        block_out_channels=(32, 64),
        layers_per_block=1,
        in_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        cross_attention_dim=32,
        conditioning_embedding_out_channels=(16, 32),
        norm_num_groups=32,
    )


def tiny_pipeline(kind: str = "txt2img") -> Any:
    """Build a tiny diffusers pipeline of one kind (see PIPELINE_KINDS) with random weights, offline.

    Writes nothing but a tokenizer folder under the system temp directory (once per process).
    """
    import diffusers

    if kind == "txt2img":
        return diffusers.StableDiffusionPipeline(**_without(_sd_components(), "image_encoder"))
    if kind == "img2img":
        return diffusers.StableDiffusionImg2ImgPipeline(**_without(_sd_components(), "image_encoder"))
    if kind == "inpaint":
        return diffusers.StableDiffusionInpaintPipeline(**_without(_sd_components(in_channels=9), "image_encoder"))
    if kind == "sdxl":
        return diffusers.StableDiffusionXLPipeline(**_sdxl_components())
    if kind == "controlnet":
        components = _without(_sd_components(), "image_encoder")
        return diffusers.StableDiffusionControlNetPipeline(controlnet=_controlnet(), **components)
    if kind == "lcm":
        components = _without(_sd_components(time_cond_proj_dim=32), "image_encoder")
        pipe: Any = diffusers.StableDiffusionPipeline(**components)
        pipe.scheduler = diffusers.LCMScheduler.from_config(pipe.scheduler.config)
        return pipe
    raise ValueError(f"unknown pipeline kind {kind!r}; expected one of {', '.join(PIPELINE_KINDS)}")


def _without(components: dict[str, Any], *names: str) -> dict[str, Any]:
    return {k: v for k, v in components.items() if k not in names}


def sample_image(size: int = 64, seed: int = 0) -> Any:
    """A deterministic RGB test image (a gradient with noise), for img2img, inpaint and ControlNet inputs."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 255, size, dtype=np.float32)
    base = np.stack([np.add.outer(ramp, ramp) / 2, np.tile(ramp, (size, 1)), np.tile(ramp[:, None], (1, size))], -1)
    noisy = np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype("uint8")
    return Image.fromarray(noisy, "RGB")


def append_chained(url: str, rows: Iterable[dict[str, Any]]) -> int:
    """Append event rows (AuditEvent.row(), with their created_at) to the log at `url`, linked into its
    hash chain, in batches of 20,000 inserts: how tests and benchmarks make large logs quickly.
    Creates the schema if needed; returns how many rows were written."""
    from guardrail.audit.chain import GENESIS, link
    from guardrail.audit.store import AuditStore, create_engine
    from guardrail.audit.tables import audit_events

    AuditStore(url).close()  # the schema
    engine = create_engine(url)  # guardrail's engine: its JSON is the canonical text the chain covers
    previous, seq, batch, written = GENESIS, 0, [], 0
    with engine.begin() as connection:
        head = (
            connection.execute(audit_events.select().order_by(audit_events.c.chain_seq.desc()).limit(1))
            .mappings()
            .first()
        )
        if head is not None:
            previous, seq = head["entry_hash"], head["chain_seq"]
        for row in rows:
            seq += 1
            linked = link(row, seq, previous)
            previous = linked["entry_hash"]
            batch.append(linked)
            if len(batch) >= 20000:
                connection.execute(audit_events.insert(), batch)
                written += len(batch)
                batch = []
        if batch:
            connection.execute(audit_events.insert(), batch)
            written += len(batch)
    engine.dispose()
    return written


def fill_synthetic_log(url: str, calls: int, *, days: float = 30.0, seed_users: int = 200) -> dict[str, int]:
    """Write `calls` calls (a request and an outcome event each, with a valid hash chain) spread over
    the last `days` days into an audit database, fast (batched inserts): a log for report and query
    tests and benchmarks. Returns how many calls each fired rule has, so a test can check a page."""
    from datetime import datetime, timedelta, timezone

    from guardrail.audit.events import new_id, outcome_event, request_event
    from guardrail.policy.decision import Decision, FiredRule
    from guardrail.privacy import PromptPrivacy
    from guardrail.request import CallContext, GenerationRequest, ModelIdentity

    privacy = PromptPrivacy("plaintext")
    models = [ModelIdentity(pipeline_class="StableDiffusionPipeline", name_or_path=f"/models/m{i}") for i in range(3)]
    start = datetime.now(timezone.utc) - timedelta(days=days)
    step = timedelta(days=days) / max(1, calls)
    counts: dict[str, int] = {}

    def rows() -> Iterator[dict[str, Any]]:
        for i in range(calls):
            fired: list[FiredRule] = []
            if i % 10 == 0:
                fired.append(FiredRule("no-gore", "deny", "Graphic violence is not allowed."))
            elif i % 25 == 5:
                fired.append(FiredRule("no-weapons", "deny", "Weapons are not allowed."))
            elif i % 7 == 3:
                fired.append(FiredRule("real-people", "flag", "The prompt may depict a real person."))
            denied = any(rule.effect == "deny" for rule in fired)
            decision = Decision("deny" if denied else "allow", tuple(fired))
            for rule in fired:
                counts[rule.id] = counts.get(rule.id, 0) + 1
            request = GenerationRequest(
                prompts=(f"a watercolor fox number {i}",), model=models[i % 3], user=f"user{i % seed_users:03d}"
            )
            ctx = CallContext(new_id(), request, "default", "v" * 64, privacy)
            notes = {}
            if i % 50 == 7:
                match = {"set": "logos", "method": "phash", "label": "ACME", "reference_id": "r1", "score": 4}
                notes = {"screening": {"outputs": [[match]]}}
            outcome = outcome_event(
                ctx,
                decision=decision,
                outputs=[] if denied else [{"sha256": "a" * 64}],
                durations_ms={"generate": 1.0},
                notes=notes,
            )
            for event in (request_event(ctx), outcome):
                row = event.row()
                row["created_at"] = start + step * i
                yield row

    append_chained(url, rows())
    return counts
