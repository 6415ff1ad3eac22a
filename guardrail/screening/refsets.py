"""Protected reference sets on disk: one folder per set, versioned, written atomically.

    refset.json          {"format": 2, "name", "fingerprint": "phash+mirror+opened/v3",
                          "keypoints": "orb512-clahe/v1", "embedding": model identity or null,
                          "entries": [{id, label, source, sha256, added_at}]}
    hashes.npy           uint64, one row per entry: its fingerprint (hashes.COLUMNS: pHash, mirror's,
                         and the same of the opened image)
    keypoints.npz        ORB keypoints of every entry: points (float32 n x 2), descriptors (uint8 n x 32),
                         offsets (int64, entries + 1: entry i owns rows offsets[i]:offsets[i+1])
    embeddings.npy       float32, one L2-normalised CLIP image embedding per entry (only with a model)

A set records the fingerprint, keypoint features and embedding model that made it and refuses to mix
in others: embeddings from two models are not comparable, so a set holds one model's or none.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from guardrail.errors import ReferenceSetError
from guardrail.screening.derived import derived_index
from guardrail.screening.hashes import COLUMNS, FINGERPRINT, fingerprint
from guardrail.screening.keypoints import KEYPOINTS, KeypointIndex, Keypoints, extract

if TYPE_CHECKING:
    from guardrail.screening.embeddings import ImageEmbedder

FORMAT = 2
SET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
"""A set's name is also its folder's name under the refs root: no separators, no `..`."""
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")


@dataclass(frozen=True)
class Reference:
    id: str
    label: str
    source: str
    sha256: str
    added_at: str


class ReferenceSet:
    """A named set of protected images, as fingerprints, keypoints, optional embeddings and metadata.
    Not thread-safe for writing; reading (search) is, once loaded."""

    def __init__(
        self,
        folder: Path,
        name: str,
        entries: list[Reference],
        hashes: np.ndarray,
        keypoints: dict[str, np.ndarray],
        embedding: str | None = None,
        embeddings: np.ndarray | None = None,
    ) -> None:
        self.folder, self.name, self.entries, self.hashes = folder, name, entries, hashes
        self._points, self._descriptors = keypoints["points"], keypoints["descriptors"]
        self._offsets = keypoints["offsets"]
        self.embedding = embedding
        """Identity of the model that made `embeddings` (None: the set has no embeddings)."""
        self.embeddings = embeddings

    @classmethod
    def create(cls, folder: str | Path, name: str | None = None) -> ReferenceSet:
        """A new empty set in `folder` (created). Writes files."""
        refset = cls.new(folder, name)
        refset.save()
        return refset

    @classmethod
    def new(cls, folder: str | Path, name: str | None = None) -> ReferenceSet:
        """A new empty set for `folder`, in memory only: its first successful add() writes it, so a
        failed first add leaves nothing behind. Writes nothing."""
        path = Path(folder)
        if (path / "refset.json").exists():
            raise ReferenceSetError(f"{path}: a reference set is already there")
        return cls(path, name or path.name, [], np.zeros((0, len(COLUMNS)), dtype=np.uint64), _no_keypoints())

    @classmethod
    def open(cls, folder: str | Path) -> ReferenceSet:
        """Load a set, checking its format, fingerprint, keypoint features and that its files agree."""
        path = Path(folder)
        meta_file = path / "refset.json"
        try:
            meta = json.loads(meta_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ReferenceSetError(f"{meta_file}: not found (create the set with `guardrail refs add`)") from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise ReferenceSetError(f"{meta_file}: not valid JSON ({exc})") from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            found = meta.get("format") if isinstance(meta, dict) else meta
            raise ReferenceSetError(
                f"{meta_file}: unknown format {found!r}; expected {FORMAT} (rebuild the set with `guardrail refs add`)"
            )
        for key, ours in (("fingerprint", FINGERPRINT), ("keypoints", KEYPOINTS)):
            if meta.get(key) != ours:
                raise ReferenceSetError(
                    f"{meta_file}: made with {key} {meta.get(key)!r}, this guardrail uses {ours!r}; "
                    "rebuild the set rather than mix them"
                )
        try:
            entries = [Reference(**entry) for entry in meta["entries"]]
        except (KeyError, TypeError) as exc:
            raise ReferenceSetError(f"{meta_file}: malformed entries ({exc})") from None
        n = len(entries)
        hashes = _load(path / "hashes.npy", np.uint64, (n, len(COLUMNS)))
        keypoints = _load_keypoints(path / "keypoints.npz", n)
        embedding = meta.get("embedding")
        embeddings = None
        if embedding is not None:
            embeddings = _load(path / "embeddings.npy", np.float32, (n, None))
        return cls(path, str(meta.get("name") or path.name), entries, hashes, keypoints, embedding, embeddings)

    @property
    def hashes(self) -> np.ndarray:
        """One fingerprint per entry (hashes.COLUMNS), column-major: search reads a column at a time."""
        return self._hashes

    @hashes.setter
    def hashes(self, value: np.ndarray) -> None:
        self._hashes = np.asfortranarray(value, dtype=np.uint64)

    def keypoints(self, index: int) -> Keypoints:
        start, stop = self._offsets[index], self._offsets[index + 1]
        return Keypoints(self._points[start:stop], self._descriptors[start:stop])

    def keypoint_index(self) -> KeypointIndex:
        """The vote index over every reference's keypoints (built on first use, saved in the folder)."""
        descriptors, offsets = self._descriptors, self._offsets
        return derived_index(
            self,
            "keypoints",
            descriptors,
            lambda: KeypointIndex.build(descriptors, offsets),
            load=KeypointIndex.loader(offsets),
            save=KeypointIndex.save,
        )

    def save(self) -> None:
        """Write every file atomically, refset.json last (a crash leaves the old set or the new one:
        refset.json names the row count the arrays must have). Writes files."""
        meta = {
            "format": FORMAT,
            "name": self.name,
            "fingerprint": FINGERPRINT,
            "keypoints": KEYPOINTS,
            "embedding": self.embedding,
            "entries": [e.__dict__ for e in self.entries],
        }
        points, descriptors, offsets, embeddings = self._points, self._descriptors, self._offsets, self.embeddings
        writes: list[tuple[str, Callable[[Any], None]]] = [
            ("hashes.npy", lambda f: np.save(f, self.hashes, allow_pickle=False)),
            ("keypoints.npz", lambda f: np.savez(f, points=points, descriptors=descriptors, offsets=offsets)),
        ]
        if embeddings is not None:
            writes.append(("embeddings.npy", lambda f: np.save(f, embeddings, allow_pickle=False)))
        writes.append(("refset.json", lambda f: f.write(json.dumps(meta, indent=1).encode())))
        self.folder.mkdir(parents=True, exist_ok=True)
        for target, write in writes:
            fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".tmp-")
            with os.fdopen(fd, "wb") as handle:
                write(handle)
            os.replace(tmp, self.folder / target)

    def _check_embedder(self, embedder: ImageEmbedder | None) -> None:
        """Refuse additions that would leave the set's embeddings incomplete or from two models."""
        ours = embedder.identity if embedder is not None else None
        if not self.entries or ours == self.embedding:
            return
        if self.embedding is None:
            raise ReferenceSetError(
                f"{self.folder}: the set was built without embeddings; its {len(self.entries)} references cannot "
                f"be compared with {ours}. Rebuild it from its images with the model configured"
            )
        if ours is None:
            raise ReferenceSetError(
                f"{self.folder}: the set holds embeddings of {self.embedding}; configure that model under "
                "screening.embedding in guardrail.yaml to add to it"
            )
        raise ReferenceSetError(
            f"{self.folder}: the set holds embeddings of {self.embedding}, not {ours}; embeddings of two models "
            "cannot be mixed. Rebuild the set with one model"
        )

    def add(
        self,
        images: Iterable[tuple[str, str, bytes | Path]],
        progress: Callable[[], None] = lambda: None,
        embedder: ImageEmbedder | None = None,
    ) -> list[Reference]:
        """Add (label, source, file path or bytes) images, size-limited before decoding; with an
        embedder, their embeddings too. All or nothing: an image that cannot be read raises InputError
        naming its source, and nothing is written. Writes files."""
        import hashlib

        from guardrail.images import open_image, read_limited

        self._check_embedder(embedder)
        added: list[Reference] = []
        rows, found, decoded = [], [], []
        for label, source, data in images:
            raw = data if isinstance(data, bytes) else read_limited(data)  # refused before reading
            image = open_image(raw, name=source)
            reference = Reference(
                uuid.uuid4().hex[:12],
                label,
                source,
                hashlib.sha256(raw).hexdigest(),
                datetime.now(timezone.utc).isoformat(),
            )
            added.append(reference)
            rows.append(fingerprint(image))
            found.append(extract(image))
            if embedder is not None:
                decoded.append(image)
            progress()
        if not added:
            return added
        if embedder is not None:
            vectors = embedder.embed_images(decoded)
            self.embeddings = vectors if self.embeddings is None else np.vstack([self.embeddings, vectors])
            self.embedding = embedder.identity
        self.entries = [*self.entries, *added]
        self.hashes = np.vstack([self.hashes, np.array(rows, dtype=np.uint64)])
        counts = np.cumsum([len(k) for k in found], dtype=np.int64) + self._offsets[-1]
        self._points = np.vstack([self._points, *(k.points for k in found)])
        self._descriptors = np.vstack([self._descriptors, *(k.descriptors for k in found)])
        self._offsets = np.concatenate([self._offsets, counts])
        self.save()
        return added

    def remove(self, ids: Iterable[str]) -> int:
        """Remove entries by id (or a unique prefix). Writes files."""
        wanted = set(ids)
        keep = [i for i, e in enumerate(self.entries) if not any(e.id.startswith(w) for w in wanted)]
        removed = len(self.entries) - len(keep)
        if removed:
            kept = [self.keypoints(i) for i in keep]
            self.entries = [self.entries[i] for i in keep]
            self.hashes = self.hashes[keep]
            if self.embeddings is not None:
                self.embeddings = self.embeddings[keep]
            empty = _no_keypoints()
            self._points = np.vstack([empty["points"], *(k.points for k in kept)])
            self._descriptors = np.vstack([empty["descriptors"], *(k.descriptors for k in kept)])
            self._offsets = np.concatenate([[0], np.cumsum([len(k) for k in kept], dtype=np.int64)])
            self.save()
        return removed


def _no_keypoints() -> dict[str, np.ndarray]:
    return {
        "points": np.zeros((0, 2), np.float32),
        "descriptors": np.zeros((0, 32), np.uint8),
        "offsets": np.zeros(1, np.int64),
    }


def _load(file: Path, dtype: Any, shape: tuple[int, int | None]) -> np.ndarray:
    """An array file of the set, checked against the dtype and row count refset.json promises."""
    try:
        array = np.load(file, allow_pickle=False)
    except FileNotFoundError:
        raise ReferenceSetError(f"{file}: missing") from None
    except (OSError, ValueError) as exc:
        raise ReferenceSetError(f"{file}: unreadable ({exc})") from None
    rows, columns = shape
    if array.dtype != dtype or array.ndim != 2 or len(array) != rows or columns not in (None, array.shape[1]):
        raise ReferenceSetError(f"{file}: {array.dtype} {array.shape} does not match {rows} entries")
    return array


def _load_keypoints(file: Path, entries: int) -> dict[str, np.ndarray]:
    import zipfile

    try:
        with open(file, "rb") as handle, np.load(handle, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in ("points", "descriptors", "offsets")}
    except FileNotFoundError:
        raise ReferenceSetError(f"{file}: missing") from None
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise ReferenceSetError(f"{file}: unreadable ({exc})") from None
    points, descriptors, offsets = arrays["points"], arrays["descriptors"], arrays["offsets"]
    total = len(descriptors)
    if (
        offsets.shape != (entries + 1,)
        or offsets[0] != 0
        or offsets[-1] != total
        or np.any(np.diff(offsets) < 0)
        or points.shape != (total, 2)
        or descriptors.shape != (total, 32)
        or descriptors.dtype != np.uint8
    ):
        raise ReferenceSetError(f"{file}: keypoint arrays do not match {entries} entries")
    return arrays


def image_files(paths: Iterable[str | Path], *, recursive: bool = False) -> list[Path]:
    """Image files among `paths` (folders expand to their images; recursively when asked)."""
    found: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            pattern = path.rglob("*") if recursive else path.glob("*")
            found += sorted(p for p in pattern if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        elif path.is_file():
            found.append(path)
        else:
            raise ReferenceSetError(f"{path}: no such file or folder")
    return found


def describe(refset: ReferenceSet) -> dict[str, Any]:
    return {
        "name": refset.name,
        "folder": str(refset.folder),
        "references": len(refset.entries),
        "fingerprint": FINGERPRINT,
        "embedding": refset.embedding,
    }
