"""CLIP embeddings (open-clip-torch) of images and prompts, in one space: the screening tier that
recognises a protected image by what it shows, and prompt rules by meaning.

The weights come from a local checkpoint file named in guardrail.yaml; nothing is downloaded. Random
weights exist for tests of the mechanics only (their embeddings mean nothing) and must be asked for.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from guardrail.errors import ConfigError
from guardrail.images import file_sha256, to_pil

log = logging.getLogger("guardrail.screening")

RANDOM_SEED = 0


class ImageEmbedder:
    """An open_clip model that embeds images and texts as L2-normalised float32 vectors.

    `identity` names the model and its weights (checkpoint SHA-256); reference sets record it and
    refuse embeddings of any other. The model loads on first use, once, thread-safely."""

    def __init__(
        self,
        model: str = "ViT-B-32",
        checkpoint: str | Path | None = None,
        *,
        random_weights: bool = False,
        device: str = "auto",
        half: bool = True,
        batch_size: int = 16,
    ) -> None:
        if checkpoint is None and not random_weights:
            raise ConfigError(
                f"embedding model {model!r} has no checkpoint: name a local weights file "
                "(screening.embedding.checkpoint in guardrail.yaml); random weights only for tests"
            )
        self.model_name, self.batch_size, self._half, self._device = model, batch_size, half, device
        self.checkpoint = Path(checkpoint) if checkpoint is not None else None
        if self.checkpoint is not None:
            if not self.checkpoint.is_file():
                raise ConfigError(f"{self.checkpoint}: embedding checkpoint not found")
            weights = f"sha256:{file_sha256(self.checkpoint)[:16]}"
        else:
            weights = f"random-weights-seed{RANDOM_SEED}"
        self.identity = f"open_clip:{model}@{weights}"
        self._lock = threading.Lock()
        self._loaded: tuple[Any, Any, Any, str] | None = None

    def _load(self) -> tuple[Any, Any, Any, str]:
        with self._lock:
            if self._loaded is None:
                import open_clip
                import torch

                device = self._device
                if device == "auto":
                    device = "cuda" if torch.cuda.is_available() else "cpu"
                elif device.startswith("cuda") and not torch.cuda.is_available():
                    raise ConfigError(
                        f"embedding device {device!r}: torch {torch.__version__} sees no CUDA device here "
                        "(use device: auto or cpu)"
                    )
                precision = "fp16" if self._half and device.startswith("cuda") else "fp32"
                if self.checkpoint is None:
                    torch.manual_seed(RANDOM_SEED)  # the same random model in every process
                try:
                    model, _, preprocess = open_clip.create_model_and_transforms(
                        self.model_name,
                        pretrained=str(self.checkpoint) if self.checkpoint else None,
                        precision=precision,
                        device=device,
                    )
                except RuntimeError as exc:  # unknown model name, or weights of another architecture
                    raise ConfigError(f"embedding model {self.model_name!r}: {exc}") from None
                model.eval()
                self._loaded = (model, preprocess, open_clip.get_tokenizer(self.model_name), device)
            return self._loaded

    def _normalised(self, features: Any) -> np.ndarray:
        vectors = features.float().cpu().numpy()
        return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True).clip(1e-12)).astype(np.float32)

    def embed_images(self, images: Sequence[Any]) -> np.ndarray:
        """One row per image (PIL, numpy or tensor images), in batches of `batch_size`."""
        import torch

        model, preprocess, _, device = self._load()
        dtype = next(model.parameters()).dtype
        rows = []
        for start in range(0, len(images), self.batch_size):
            chunk = [preprocess(to_pil(image).convert("RGB")) for image in images[start : start + self.batch_size]]
            with torch.inference_mode():
                rows.append(self._normalised(model.encode_image(torch.stack(chunk).to(device, dtype))))
        return np.vstack(rows) if rows else np.zeros((0, 0), np.float32)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """One row per text, in the same space as the images."""
        import torch

        model, _, tokenizer, device = self._load()
        with torch.inference_mode():
            return self._normalised(model.encode_text(tokenizer(list(texts)).to(device)))


def embedder_from_config(settings: Any, base: Any) -> ImageEmbedder | None:
    """The embedder guardrail.yaml configures (`settings`: EmbeddingConfig or None); None, with a
    warning, when a model is named without a checkpoint: the embedding tier is then off."""
    if settings is None:
        return None
    if not settings.has_weights:
        log.warning(
            "screening.embedding names %s but no checkpoint: the CLIP tier is off, images are screened "
            "by hashes and keypoints only",
            settings.model,
        )
        return None
    return ImageEmbedder(
        settings.model,
        base(settings.checkpoint) if settings.checkpoint else None,
        random_weights=settings.random_weights,
        device=settings.device,
        half=settings.half,
        batch_size=settings.batch_size,
    )
