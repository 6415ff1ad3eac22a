"""What every classifier returns, and the one shape a classifier has.

A classifier maps a batch of images (PIL images, H x W x C uint8 arrays) to, per image, detections:
a label, a score in [0, 1] and, for detectors, the box it was found in. Anything with that method is
a classifier; a plain function returning per image `{label: score}` becomes one through `as_classifier`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from guardrail.errors import ConfigError


@dataclass(frozen=True)
class Detection:
    """One label found in one image: its score and, from a detector, its box (x, y, width, height in
    the image's pixels)."""

    label: str
    score: float
    box: tuple[int, int, int, int] | None = None

    def as_dict(self) -> dict[str, Any]:
        found: dict[str, Any] = {"label": self.label, "score": round(self.score, 4)}
        if self.box is not None:
            found["box"] = list(self.box)
        return found


@runtime_checkable
class Classifier(Protocol):
    identity: str
    """What the model is (name and weights' hash or version): recorded with every score it gives."""

    def classify(self, images: Sequence[Any]) -> list[list[Detection]]: ...


class CallableClassifier:
    """A function of a batch of images returning, per image, `{label: score}` or a list of Detections."""

    def __init__(self, fn: Callable[[list[Any]], Sequence[Any]], identity: str | None = None) -> None:
        self.fn = fn
        self.identity = identity or f"callable:{getattr(fn, '__qualname__', type(fn).__name__)}"

    def classify(self, images: Sequence[Any]) -> list[list[Detection]]:
        results = list(self.fn(list(images)))
        if len(results) != len(images):
            raise ConfigError(f"classifier {self.identity} returned {len(results)} results for {len(images)} images")
        return [_detections(result, self.identity) for result in results]


def _detections(result: Any, identity: str) -> list[Detection]:
    if isinstance(result, Mapping):
        return [Detection(str(label), _score(score, identity)) for label, score in result.items()]
    found = []
    for item in result:
        if not isinstance(item, Detection):
            raise ConfigError(f"classifier {identity} returned {type(item).__name__}, not a Detection or a mapping")
        found.append(Detection(item.label, _score(item.score, identity), item.box))
    return found


def _score(value: Any, identity: str) -> float:
    score = float(value)
    if not 0.0 <= score <= 1.0:  # NaN fails this too
        raise ConfigError(f"classifier {identity} returned the score {value!r}, outside [0, 1]")
    return score


def as_classifier(value: Any) -> Classifier:
    """A Classifier as it is, or a plain function wrapped as one."""
    if isinstance(value, Classifier):
        return value
    if callable(value):
        return CallableClassifier(value)
    raise ConfigError(f"{value!r} is neither a classifier (identity, classify()) nor a function of images")
