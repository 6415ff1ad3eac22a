"""diffusers' StableDiffusionSafetyChecker as a classifier with scores, from a local model folder
(`safety_checker/` and `feature_extractor/`, as a Stable Diffusion checkpoint lays them out).

The checker itself only says yes or no, by thresholds it does not disclose, and blacks the image out.
Here its margins become scores: for each of its 17 concepts (labels concept-0 ... concept-16) and for
`nsfw` (the largest), score = 0.5 + 10 x (cosine similarity - the concept's threshold, with the
checker's own adjustment after a special-care hit), clipped to [0, 1]. So 0.5 is exactly where the
checker would have blacked the image out; a policy can ask for more (0.6) or less (0.4) and flag
instead of blocking. The image is never changed here.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from guardrail.classify.base import Detection
from guardrail.errors import ConfigError
from guardrail.images import to_pil

SCALE = 10.0
"""Score per unit of cosine margin: 0.05 of margin above the threshold scores 1.0."""
_SPECIAL_ADJUSTMENT = 0.01  # what the checker adds to every concept's margin after a special-care hit


class SafetyCheckerClassifier:
    def __init__(self, path: str | Path) -> None:
        try:
            import torch  # noqa: F401
            from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
            from transformers import CLIPImageProcessor
        except ModuleNotFoundError:
            raise ConfigError("the safety-checker classifier needs pip install 'guardrail[diffusers]'") from None
        folder = Path(path)
        for part in ("safety_checker", "feature_extractor"):
            if not (folder / part).is_dir():
                raise ConfigError(f"{folder / part}: not found (a Stable Diffusion model folder has it)")
        self.model = StableDiffusionSafetyChecker.from_pretrained(folder / "safety_checker", local_files_only=True)
        self.model.eval()
        self.processor = CLIPImageProcessor.from_pretrained(folder / "feature_extractor", local_files_only=True)
        self.identity = f"sd-safety-checker:{folder.name}"

    def classify(self, images: Sequence[Any]) -> list[list[Detection]]:
        import torch

        if not images:
            return []
        model = self.model
        pixels = self.processor([to_pil(image).convert("RGB") for image in images], return_tensors="pt").pixel_values
        with torch.no_grad():
            embeds = model.visual_projection(model.vision_model(pixels.to(model.dtype))[1])
            special = _cosine(embeds, model.special_care_embeds) - model.special_care_embeds_weights[None, :].float()
            concepts = _cosine(embeds, model.concept_embeds) - model.concept_embeds_weights[None, :].float()
        special_np, concepts_np = special.numpy(), concepts.numpy()
        found = []
        for i in range(len(images)):
            margins = concepts_np[i] + (_SPECIAL_ADJUSTMENT if (special_np[i] > 0).any() else 0.0)
            scores = np.clip(0.5 + SCALE * margins, 0.0, 1.0)
            found.append(
                [Detection("nsfw", float(scores.max()))]
                + [Detection(f"concept-{k}", float(s)) for k, s in enumerate(scores)]
            )
        return found


def _cosine(embeds: Any, concepts: Any) -> Any:
    import torch

    return torch.mm(torch.nn.functional.normalize(embeds.float()), torch.nn.functional.normalize(concepts.float()).t())
