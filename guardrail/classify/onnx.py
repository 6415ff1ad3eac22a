"""ONNX models with onnxruntime: the session on CUDA when the installed onnxruntime has it, else the
CPU; and a generic image classifier described by configuration (input size, normalisation, labels)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from guardrail.classify.base import Detection
from guardrail.errors import ConfigError
from guardrail.images import to_pil


def session(path: str | Path) -> Any:
    """An onnxruntime session over a local model file, on the GPU when one is usable."""
    try:
        import onnxruntime
    except ModuleNotFoundError:
        raise ConfigError("ONNX classifiers need onnxruntime: pip install 'guardrail[onnx]'") from None
    model = Path(path)
    if not model.is_file():
        raise ConfigError(f"{model}: ONNX model file not found")
    available = onnxruntime.get_available_providers()
    providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # onnxruntime's warnings go to stderr, not the caller's log
    # its threads sleep between runs instead of spinning beside the Guard's other stages
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return onnxruntime.InferenceSession(str(model), sess_options=options, providers=providers)
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
        raise ConfigError(f"{model}: not a usable ONNX model ({exc})") from None


def file_identity(path: str | Path) -> str:
    """The model's file name and the start of its SHA-256: which weights gave a score."""
    model = Path(path)
    return f"{model.name}@sha256:{hashlib.sha256(model.read_bytes()).hexdigest()[:16]}"


class OnnxClassifier:
    """An image classifier: RGB in [0, 1] resized to size x size, normalised by mean and std, NCHW;
    one output of one score (or logit) per label, through softmax, sigmoid or as it is."""

    def __init__(
        self,
        path: str | Path,
        labels: Sequence[str],
        *,
        size: int = 224,
        mean: Sequence[float] = (0.0, 0.0, 0.0),
        std: Sequence[float] = (1.0, 1.0, 1.0),
        activation: str = "softmax",
    ) -> None:
        if activation not in ("softmax", "sigmoid", "none"):
            raise ConfigError(f"activation {activation!r} is not one of softmax, sigmoid, none")
        self.session = session(path)
        self.input = self.session.get_inputs()[0].name
        self.labels, self.size, self.activation = list(labels), size, activation
        self.mean = np.asarray(mean, np.float32).reshape(1, 3, 1, 1)
        self.std = np.asarray(std, np.float32).reshape(1, 3, 1, 1)
        self.identity = file_identity(path)

    def classify(self, images: Sequence[Any]) -> list[list[Detection]]:
        from PIL import Image

        if not images:
            return []
        batch = np.stack(
            [
                np.asarray(to_pil(image).convert("RGB").resize((self.size, self.size), Image.Resampling.BILINEAR))
                for image in images
            ]
        )
        tensor = (batch.transpose(0, 3, 1, 2).astype(np.float32) / 255.0 - self.mean) / self.std
        scores = np.asarray(self.session.run(None, {self.input: tensor})[0], np.float64).reshape(len(images), -1)
        if scores.shape[1] != len(self.labels):
            raise ConfigError(f"{self.identity}: {scores.shape[1]} outputs for {len(self.labels)} labels")
        if self.activation == "softmax":
            scores = np.exp(scores - scores.max(axis=1, keepdims=True))
            scores /= scores.sum(axis=1, keepdims=True)
        elif self.activation == "sigmoid":
            scores = 1.0 / (1.0 + np.exp(-scores))
        scores = np.clip(scores, 0.0, 1.0)
        return [[Detection(label, float(s)) for label, s in zip(self.labels, row, strict=True)] for row in scores]
