"""Early abort: looking at a diffusers pipeline's latents while it runs, and stopping it when a block
check fires on what they already show.

At the steps the policy names (`preview.at`, fractions of the steps), the step callback turns the
latents into a rough RGB image: with a local TAESD when guardrail.yaml names one (`preview_decoder`),
else with a linear map and no decoder run: each latent pixel's channels times a 4 x 3 matrix plus a
bias. The map is fitted once per VAE, by least squares on a few random latents the pipeline's own VAE
decodes (so it holds for SD, SDXL or any 4-channel VAE, with no constants copied from elsewhere). On
that preview run the cheap block checks: the classifier rules whose action is block, and the pHash
tier of the screening sets whose action is block. A hit raises GenerationStopped out of the pipeline:
the rest of the steps and the VAE decode are never run.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from guardrail.errors import ConfigError, GenerationStopped
from guardrail.policy.decision import FiredRule

_FIT_SAMPLES, _FIT_SIDE = 6, 16
_maps: weakref.WeakKeyDictionary[Any, tuple[np.ndarray, np.ndarray]] = weakref.WeakKeyDictionary()
_decoders: dict[str, Any] = {}
_lock = threading.Lock()


def latent_map(vae: Any) -> tuple[np.ndarray, np.ndarray]:
    """(weights C x 3, bias 3): RGB in [0, 1] from a latent pixel (as the step callback sees latents,
    before the VAE's scaling is undone), fitted on what the VAE decodes from random latents."""
    import torch

    with _lock:
        if vae in _maps:
            return _maps[vae]
    channels = int(vae.config.latent_channels)
    scale = float(getattr(vae.config, "scaling_factor", 1.0) or 1.0)
    generator = torch.Generator().manual_seed(0)
    latents = torch.randn((_FIT_SAMPLES, channels, _FIT_SIDE, _FIT_SIDE), generator=generator)
    parameter = next(vae.parameters())
    with torch.no_grad():
        decoded = vae.decode(latents.to(parameter.device, parameter.dtype) / scale).sample.float().cpu()
    rgb = torch.nn.functional.adaptive_avg_pool2d((decoded.clamp(-1, 1) + 1) / 2, _FIT_SIDE)
    x = latents.permute(0, 2, 3, 1).reshape(-1, channels).numpy().astype(np.float64)
    y = rgb.permute(0, 2, 3, 1).reshape(-1, 3).numpy().astype(np.float64)
    design = np.hstack([x, np.ones((len(x), 1))])
    solution, *_ = np.linalg.lstsq(design, y, rcond=None)
    fitted = (solution[:channels].astype(np.float32), solution[channels].astype(np.float32))
    with _lock:
        _maps[vae] = fitted
    return fitted


def tiny_decoder(path: str | Path) -> Any:
    """A local TAESD (diffusers AutoencoderTiny), loaded once per process and folder."""
    key = str(Path(path).resolve())
    with _lock:
        if key not in _decoders:
            from diffusers import AutoencoderTiny

            if not Path(key).is_dir():
                raise ConfigError(f"{key}: the preview decoder (a TAESD / AutoencoderTiny folder) is not there")
            _decoders[key] = AutoencoderTiny.from_pretrained(key, local_files_only=True).eval()
        return _decoders[key]


def preview_images(latents: Any, vae: Any, side: int, decoder: Any = None) -> list[Any]:
    """RGB previews of a batch of latents (B x C x h x w), scaled to `side` px on the longer side: by
    the tiny decoder when one is given, else by the VAE's fitted linear map."""
    import torch
    from PIL import Image

    if decoder is not None:
        parameter = next(decoder.parameters())
        with torch.no_grad():
            decoded = decoder.decode(latents.to(parameter.device, parameter.dtype)).sample.float().cpu()
        rgb = ((decoded.clamp(-1, 1) + 1) / 2).numpy().transpose(0, 2, 3, 1)
    else:
        weights, bias = latent_map(vae)
        array = latents.detach().float().cpu().numpy().transpose(0, 2, 3, 1)
        rgb = np.clip(array @ weights + bias, 0.0, 1.0)
    images = []
    for item in rgb:
        image = Image.fromarray((item * 255).round().astype(np.uint8))
        factor = side / max(image.size)
        images.append(
            image.resize((round(image.width * factor), round(image.height * factor)), Image.Resampling.BILINEAR)
        )
    return images


class EarlyAbort:
    """The step callback for one call: previews at the chosen steps, checks, stop on a block."""

    def __init__(
        self, state: Any, steps: int, vae: Any, chained: Callable[..., Any] | None, decoder: Any = None
    ) -> None:
        policy = state.engine.policy
        self.state, self.steps, self.vae, self.chained, self.decoder = state, steps, vae, chained, decoder
        self.at = sorted({min(steps - 1, max(0, round(f * steps) - 1)) for f in policy.preview.at})
        self.looked: list[int] = []
        """The steps at which a preview was checked (audited)."""

    def __call__(self, pipe: Any, step: int, timestep: Any, callback_kwargs: dict[str, Any]) -> dict[str, Any]:
        latents = callback_kwargs.get("latents")
        if step in self.at and latents is not None and getattr(latents, "ndim", 0) == 4:
            self.looked.append(step)
            fired = self.check(preview_images(latents, self.vae, 512, self.decoder), step)
            if fired:
                raise GenerationStopped(fired, step + 1, self.steps)
        if self.chained is not None:
            return dict(self.chained(pipe, step, timestep, callback_kwargs) or callback_kwargs)
        return callback_kwargs

    def check(self, images: list[Any], step: int) -> list[FiredRule]:
        """The block checks on the preview: the classifier rules whose action is block, and the pHash
        tier of the screening sets whose action is block (each image hashed once for all sets)."""
        from guardrail.classify.rules import applicable
        from guardrail.pipeline.classify import classify
        from guardrail.screening.screen import Thresholds, fired_rules, screen

        state, preview = self.state, self.state.engine.policy.preview
        request = state.request
        fired: list[FiredRule] = []
        role = f"preview at step {step + 1}"
        if preview.classifiers:
            rules = applicable(state.engine.policy.classifiers, request.user, request.roles, "output")
            blocking = {name: rule for name, rule in rules.items() if rule.action == "block"}
            if blocking:
                fired += classify(state.evidence, blocking, images, role)[0].fired
        if preview.screening:
            refsets = state.evidence.checks.reference_sets
            hashes_only = {
                name: Thresholds(max_distance=rule.max_distance, min_inliers=None, min_similarity=None, action="block")
                for name, rule in state.engine.policy.screening.sets.items()
                if rule.action == "block" and rule.max_distance is not None and name in refsets
            }
            if hashes_only:
                fired += fired_rules(screen(images, hashes_only, dict(refsets)), role)
        return fired
