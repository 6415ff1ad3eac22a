"""The Guard's classifiers by name: those guardrail.yaml configures (loaded on first use, once per
Guard, from local files only), those given as objects, and NudeNet, built in when its extra is
installed."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from guardrail.classify.base import Classifier, as_classifier
from guardrail.errors import ConfigError

BUILT_IN = "nudenet"


class ClassifierSet:
    def __init__(
        self,
        configured: Mapping[str, Any] | None = None,
        given: Mapping[str, Any] | None = None,
        path: Callable[[str], Path] = Path,
    ) -> None:
        """`configured`: name -> ClassifierConfig (guardrail.yaml); `given`: name -> a classifier or a
        function of images; `path` resolves the config's relative paths."""
        self._configured = dict(configured or {})
        self._loaded: dict[str, Classifier] = {name: as_classifier(c) for name, c in (given or {}).items()}
        self._path = path
        self._lock = threading.Lock()

    @property
    def names(self) -> frozenset[str]:
        from guardrail.classify.nudenet import available

        built_in = {BUILT_IN} if available() else set()
        return frozenset({*self._configured, *self._loaded, *built_in})

    def get(self, name: str) -> Classifier:
        """The classifier called `name`, loaded on first use. Raises ConfigError."""
        with self._lock:
            if name not in self._loaded:
                self._loaded[name] = self._load(name)
            return self._loaded[name]

    def _load(self, name: str) -> Classifier:
        from guardrail.classify.nudenet import NudeNetClassifier
        from guardrail.classify.onnx import OnnxClassifier

        config = self._configured.get(name)
        if config is None:
            if name == BUILT_IN:
                return NudeNetClassifier()
            known = ", ".join(sorted(self.names)) or "none"
            raise ConfigError(
                f"unknown classifier {name!r} (configured: {known}); add it under classifiers in guardrail.yaml"
            )
        path = self._path(config.path) if config.path else None
        if config.kind == "nudenet":
            return NudeNetClassifier(path)
        if config.kind == "safety-checker":
            from guardrail.classify.safety import SafetyCheckerClassifier

            assert path is not None  # the config requires a path
            return SafetyCheckerClassifier(path)
        assert path is not None  # the config requires a path for onnx
        return OnnxClassifier(
            path, config.labels, size=config.size, mean=config.mean, std=config.std, activation=config.activation
        )
