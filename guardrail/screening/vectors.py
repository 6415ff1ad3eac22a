"""Nearest reference embeddings by cosine similarity: exact (one matrix product) while a set is
small, an approximate index (faiss IVF with 8-bit scalar quantisation) once it is large. The switch is
automatic, at ANN_MIN vectors; faiss was chosen over usearch by bench/screening_speed.py (recall and
memory at 1M vectors)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np

from guardrail.screening.derived import derived_index
from guardrail.screening.threads import single_threaded

ANN_MIN = 100_000
"""Sets with at least this many embeddings are searched through the approximate index."""
NPROBE = 16


class VectorIndex(Protocol):
    def search(self, vector: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(row indices, cosine similarities) of the k nearest rows, nearest first."""
        ...


class ExactIndex:
    def __init__(self, vectors: np.ndarray) -> None:
        self.vectors = vectors

    def search(self, vector: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        # below 50k rows einsum: no BLAS threads left spinning beside the keypoint tier's work; above,
        # the product itself dominates and BLAS is as fast or faster
        small = len(self.vectors) < 50_000
        similarity = np.einsum("ij,j->i", self.vectors, vector) if small else self.vectors @ vector
        k = min(k, len(similarity))
        top = np.argpartition(similarity, len(similarity) - k)[-k:]
        top = top[np.argsort(-similarity[top])]
        return top, similarity[top]


class ApproximateIndex:
    """faiss IndexIVFScalarQuantizer (inner product on normalised vectors = cosine): about 0.5 KB per
    512-d vector, built in about a minute per million on two cores, saved beside the set."""

    def __init__(self, index: Any) -> None:
        self.index = index

    @classmethod
    def build(cls, vectors: np.ndarray, *, seed: int = 0) -> ApproximateIndex:
        import faiss

        n, dim = vectors.shape
        lists = max(1, int(4 * np.sqrt(n)))
        index = faiss.IndexIVFScalarQuantizer(
            faiss.IndexFlatIP(dim), dim, lists, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
        )
        rng = np.random.default_rng(seed)
        index.train(vectors[rng.choice(n, min(n, 50 * lists), replace=False)])
        index.add(vectors)
        index.nprobe = NPROBE
        return cls(index)

    @classmethod
    def load(cls, path: Path) -> ApproximateIndex:
        import faiss

        index = faiss.read_index(str(path))
        faiss.extract_index_ivf(index).nprobe = NPROBE
        return cls(index)

    def save(self, path: Path) -> None:
        import faiss

        faiss.write_index(self.index, str(path))

    def search(self, vector: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        with single_threaded():
            similarity, indices = self.index.search(vector[None, :].astype(np.float32), k)
        keep = indices[0] >= 0
        return indices[0][keep], similarity[0][keep]


def index_for(refset: Any) -> VectorIndex:
    """The index over a set's embeddings: exact below ANN_MIN, else approximate (saved in the set's
    folder as ann-<content hash>.faiss so the next process loads it)."""
    vectors = refset.embeddings
    if len(vectors) < ANN_MIN:
        return derived_index(refset, "exact", vectors, lambda: ExactIndex(vectors))
    return derived_index(
        refset,
        "ann",
        vectors,
        lambda: ApproximateIndex.build(vectors),
        load=ApproximateIndex.load,
        save=ApproximateIndex.save,
    )
