"""Where the images of calls held for review wait: one folder, owner-only, each file named by the
SHA-256 of its bytes (content-addressed: a name cannot be chosen from outside, and a file is verified
when it is read back). Beside each image, the manifest it will be signed with at release."""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from guardrail.errors import ConfigError, ReviewError

_DIGEST = re.compile(r"[0-9a-f]{64}")


class HeldImages:
    """A content-addressed folder of held image bytes and their manifests. Writes files."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    def _ready(self) -> Path:
        """The folder, created owner-only; an existing one is narrowed to its owner."""
        try:
            self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            if self.folder.stat().st_mode & 0o077:
                os.chmod(self.folder, 0o700)
        except OSError as exc:
            raise ConfigError(f"{self.folder}: the review folder cannot be used ({exc.strerror or exc})") from None
        return self.folder

    def _path(self, digest: str, suffix: str = "") -> Path:
        if not _DIGEST.fullmatch(digest):
            raise ReviewError(f"{digest!r} is not the SHA-256 of a held image")
        return self.folder / f"{digest}{suffix}"

    def put(self, data: bytes, signing: dict[str, Any] | None = None) -> str:
        """Store bytes (and what signs them at release: the manifest, the ingredients' definitions, mime
        types and base64 bytes), returning their SHA-256. Atomic: a crash leaves each file whole or absent."""
        digest = hashlib.sha256(data).hexdigest()
        folder = self._ready()
        writes = [("", data)]
        if signing is not None:
            writes.append((".manifest.json", json.dumps(signing, sort_keys=True).encode()))
        for suffix, content in writes:
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
            with os.fdopen(fd, "wb") as handle:  # mkstemp creates it 0600
                handle.write(content)
            os.replace(tmp, self._path(digest, suffix))
        return digest

    def get(self, digest: str) -> bytes:
        """The held bytes, checked against their name (a file changed on disk is refused)."""
        try:
            data = self._path(digest).read_bytes()
        except FileNotFoundError:
            raise ReviewError(f"held image {digest[:16]}... is not in {self.folder} (deleted or erased)") from None
        if hashlib.sha256(data).hexdigest() != digest:
            raise ReviewError(f"held image {digest[:16]}... in {self.folder} was changed on disk; it is not released")
        return data

    def signing(self, digest: str) -> dict[str, Any] | None:
        """What was held beside an image to sign it at release, if anything (the Guard had a signer)."""
        path = self._path(digest, ".manifest.json")
        if not path.exists():
            return None
        return dict(json.loads(path.read_text(encoding="utf-8")))

    def delete(self, digest: str) -> None:
        for suffix in ("", ".manifest.json"):
            self._path(digest, suffix).unlink(missing_ok=True)
