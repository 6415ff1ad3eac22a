"""NudeNet's detector (the `nudenet` package's 320n.onnx, a YOLOv8 model of 18 labels: exposed and
covered body parts, FACE_FEMALE, FACE_MALE) run with onnxruntime directly.

The package's own NudeDetector is not used: it ignores the providers it is given (no GPU), and it
converts arrays as RGBA, so a 3-channel array fails. The pre- and post-processing here are the
package's (pad to a square at the bottom and right, resize to 320, BGR in [0, 1]; boxes from centre
form, scores >= 0.2, non-maximum suppression at IoU 0.45), so the scores are the same.

The package's wheel says MIT, its licence files are AGPL-3.0: it is the optional extra
`guardrail[nudenet]`, never a core dependency.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from guardrail.classify.base import Detection
from guardrail.classify.onnx import file_identity, session
from guardrail.errors import ConfigError
from guardrail.images import to_pil

LABELS = (
    "FEMALE_GENITALIA_COVERED",
    "FACE_FEMALE",
    "BUTTOCKS_EXPOSED",
    "FEMALE_BREAST_EXPOSED",
    "FEMALE_GENITALIA_EXPOSED",
    "MALE_BREAST_EXPOSED",
    "ANUS_EXPOSED",
    "FEET_EXPOSED",
    "BELLY_COVERED",
    "FEET_COVERED",
    "ARMPITS_COVERED",
    "ARMPITS_EXPOSED",
    "FACE_MALE",
    "BELLY_EXPOSED",
    "MALE_GENITALIA_EXPOSED",
    "ANUS_COVERED",
    "FEMALE_BREAST_COVERED",
    "BUTTOCKS_COVERED",
)
SIZE = 320
_MIN_SCORE = 0.2
_NMS_SCORE, _NMS_IOU = 0.25, 0.45


def packaged_model() -> Path:
    """The 320n.onnx the nudenet package ships (found without importing it: its import loads OpenCV
    and onnxruntime at once)."""
    import importlib.util

    spec = importlib.util.find_spec("nudenet")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("the nudenet classifier needs the nudenet package: pip install 'guardrail[nudenet]'")
    return Path(next(iter(spec.submodule_search_locations))) / "320n.onnx"


def available() -> bool:
    import importlib.util

    return importlib.util.find_spec("nudenet") is not None


class NudeNetClassifier:
    """Detections of NudeNet's 18 labels with their boxes, in batches."""

    def __init__(self, path: str | Path | None = None, batch: int = 8) -> None:
        model = Path(path) if path is not None else packaged_model()
        self.session = session(model)
        self.input = self.session.get_inputs()[0].name
        self.batch = batch
        self.identity = f"nudenet/{file_identity(model)}"

    def classify(self, images: Sequence[Any]) -> list[list[Detection]]:
        found: list[list[Detection]] = []
        for start in range(0, len(images), self.batch):
            chunk = [np.asarray(to_pil(image).convert("RGB")) for image in images[start : start + self.batch]]
            tensor = np.stack([_input(pixels) for pixels in chunk])
            output = self.session.run(None, {self.input: tensor})[0]
            found += [_detections(output[i], pixels.shape[1], pixels.shape[0]) for i, pixels in enumerate(chunk)]
        return found


def _input(pixels: np.ndarray) -> np.ndarray:
    import cv2

    h, w = pixels.shape[:2]
    side = max(h, w)
    padded = cv2.copyMakeBorder(pixels, 0, side - h, 0, side - w, cv2.BORDER_CONSTANT, value=(0, 0, 0))
    resized = cv2.resize(padded, (SIZE, SIZE), interpolation=cv2.INTER_LINEAR)
    # channels in BGR order: what the package's own path (OpenCV decode, a swap, then blobFromImage's
    # swap again) hands the model, and so what its scores were measured with
    return np.ascontiguousarray(resized[..., ::-1].transpose(2, 0, 1), np.float32) / 255.0


def _detections(output: np.ndarray, width: int, height: int) -> list[Detection]:
    import cv2

    rows = output.T  # candidates x (4 box values + one score per label)
    scores = rows[:, 4:]
    best = scores.argmax(axis=1)
    score = scores[np.arange(len(rows)), best]
    keep = np.flatnonzero(score >= _MIN_SCORE)
    side = max(width, height)
    boxes = []
    for i in keep:
        cx, cy, w, h = (float(v) * side / SIZE for v in rows[i, :4])
        x, y = max(0.0, min(cx - w / 2, width)), max(0.0, min(cy - h / 2, height))
        boxes.append([x, y, min(w, width - x), min(h, height - y)])
    chosen = cv2.dnn.NMSBoxes(boxes, [float(score[i]) for i in keep], _NMS_SCORE, _NMS_IOU) if boxes else []
    return [
        Detection(
            LABELS[int(best[keep[j]])],
            float(score[keep[j]]),
            tuple(int(v) for v in boxes[j]),  # type: ignore[arg-type]
        )
        for j in np.asarray(chosen, int).reshape(-1).tolist()
    ]
