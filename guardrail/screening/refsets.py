"""Protected reference sets on disk: one folder per set, versioned, written atomically.

    refset.json   {"format": 1, "name", "fingerprint": "phash+mirror/v1",
                   "entries": [{id, label, source, sha256, added_at}]}
    hashes.npy    uint64 array, one row per entry: (pHash, mirror pHash)

A set records the fingerprint that made it and refuses to mix in another one.
"""

from __future__ import annotations

import json
import os
import tempfile
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from guardrail.errors import ConfigError
from guardrail.screening.hashes import FINGERPRINT, fingerprint

FORMAT = 1
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")


class ReferenceSetError(ConfigError):
    """A reference set cannot be read or changed; the message names the file and what is wrong."""


@dataclass(frozen=True)
class Reference:
    id: str
    label: str
    source: str
    sha256: str
    added_at: str


class ReferenceSet:
    """A named set of protected images, as fingerprints and metadata. Not thread-safe for writing;
    reading (search) is, once loaded."""

    def __init__(self, folder: Path, name: str, entries: list[Reference], hashes: np.ndarray) -> None:
        self.folder, self.name, self.entries, self.hashes = folder, name, entries, hashes

    @classmethod
    def create(cls, folder: str | Path, name: str | None = None) -> ReferenceSet:
        """A new empty set in `folder` (created). Writes files."""
        path = Path(folder)
        if (path / "refset.json").exists():
            raise ReferenceSetError(f"{path}: a reference set is already there")
        path.mkdir(parents=True, exist_ok=True)
        refset = cls(path, name or path.name, [], np.zeros((0, 2), dtype=np.uint64))
        refset.save()
        return refset

    @classmethod
    def open(cls, folder: str | Path) -> ReferenceSet:
        """Load a set, checking its format, fingerprint and that its files agree."""
        path = Path(folder)
        meta_file, hash_file = path / "refset.json", path / "hashes.npy"
        try:
            meta = json.loads(meta_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ReferenceSetError(f"{meta_file}: not found (create the set with `guardrail refs add`)") from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise ReferenceSetError(f"{meta_file}: not valid JSON ({exc})") from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            found = meta.get("format") if isinstance(meta, dict) else meta
            raise ReferenceSetError(f"{meta_file}: unknown format {found!r}; expected {FORMAT}")
        if meta.get("fingerprint") != FINGERPRINT:
            raise ReferenceSetError(
                f"{meta_file}: made with fingerprint {meta.get('fingerprint')!r}, this guardrail uses {FINGERPRINT!r}; "
                "rebuild the set rather than mix fingerprints"
            )
        try:
            entries = [Reference(**entry) for entry in meta["entries"]]
            hashes = np.load(hash_file, allow_pickle=False)
        except (KeyError, TypeError) as exc:
            raise ReferenceSetError(f"{meta_file}: malformed entries ({exc})") from None
        except (OSError, ValueError) as exc:
            raise ReferenceSetError(f"{hash_file}: unreadable ({exc})") from None
        if hashes.dtype != np.uint64 or hashes.ndim != 2 or hashes.shape != (len(entries), 2):
            raise ReferenceSetError(f"{hash_file}: {hashes.dtype} {hashes.shape} does not match {len(entries)} entries")
        return cls(path, str(meta.get("name") or path.name), entries, hashes)

    def save(self) -> None:
        """Write both files atomically (a crash leaves the old set or the new one). Writes files."""
        meta = {
            "format": FORMAT,
            "name": self.name,
            "fingerprint": FINGERPRINT,
            "entries": [e.__dict__ for e in self.entries],
        }
        for target, write in (
            (self.folder / "hashes.npy", lambda f: np.save(f, self.hashes, allow_pickle=False)),
            (self.folder / "refset.json", lambda f: f.write(json.dumps(meta, indent=1).encode())),
        ):
            fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".tmp-")
            with os.fdopen(fd, "wb") as handle:
                write(handle)
            os.replace(tmp, target)

    def add(
        self, images: Iterable[tuple[str, str, bytes | Path]], progress: Callable[[], None] = lambda: None
    ) -> list[Reference]:
        """Add (label, source, file path or bytes) images, size-limited before decoding. Writes files."""
        import hashlib

        from guardrail.images import open_image

        added, rows = [], []
        for label, source, data in images:
            raw = data if isinstance(data, bytes) else Path(data).read_bytes()
            image = open_image(raw)
            reference = Reference(
                uuid.uuid4().hex[:12],
                label,
                source,
                hashlib.sha256(raw).hexdigest(),
                datetime.now(timezone.utc).isoformat(),
            )
            added.append(reference)
            rows.append(fingerprint(image))
            progress()
        if added:
            self.entries = [*self.entries, *added]
            self.hashes = np.vstack([self.hashes, np.array(rows, dtype=np.uint64)])
            self.save()
        return added

    def remove(self, ids: Iterable[str]) -> int:
        """Remove entries by id (or a unique prefix). Writes files."""
        wanted = set(ids)
        keep = [i for i, e in enumerate(self.entries) if not any(e.id.startswith(w) for w in wanted)]
        removed = len(self.entries) - len(keep)
        if removed:
            self.entries = [self.entries[i] for i in keep]
            self.hashes = self.hashes[keep]
            self.save()
        return removed


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
    }
