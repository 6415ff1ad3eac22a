"""Prompt rules by meaning: a prompt is compared with each rule's concepts through the CLIP text
embeddings of the configured model; a close enough prompt fires the rule (deny or flag)."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from guardrail.policy.decision import FiredRule
from guardrail.screening.embeddings import ImageEmbedder


class ConceptScreen:
    """Concept rules against prompts; the concepts' embeddings are computed once per rule set."""

    def __init__(self, embedder: ImageEmbedder) -> None:
        self.embedder = embedder
        self._cache: dict[tuple[str, ...], np.ndarray] = {}
        self._lock = threading.Lock()

    def _concepts(self, concepts: tuple[str, ...]) -> np.ndarray:
        with self._lock:
            if concepts not in self._cache:
                self._cache[concepts] = self.embedder.embed_texts(list(concepts))
            return self._cache[concepts]

    def fired(self, prompts: tuple[str, ...], rules: list[Any]) -> list[FiredRule]:
        """One FiredRule per rule that any prompt comes close to, naming the closest concept."""
        texts = [p for p in prompts if p.strip()]
        if not texts or not rules:
            return []
        vectors = self.embedder.embed_texts(texts)
        found = []
        for rule in rules:
            similarity = vectors @ self._concepts(tuple(rule.concepts)).T  # prompts x concepts
            p, c = np.unravel_index(int(np.argmax(similarity)), similarity.shape)
            best = float(similarity[p, c])
            if best >= rule.min_similarity:
                message = rule.message or f"prompt is close in meaning to {rule.concepts[c]!r}"
                detail = f"prompt {p} ~ {rule.concepts[c]!r}: similarity {best:.3f} >= {rule.min_similarity:g}"
                found.append(FiredRule(rule.id, rule.effect, message, detail))
        return found
