"""Signed checkpoints: an Ed25519 signature over the chain head (sequence number and entry hash).

The checkpoint key is the audit log's own (never the C2PA signing key). A checkpoint proves that
the chain had reached a given entry with a given hash, so rewriting history before it, or deleting
the newest events after it, is detected even by someone who can recompute every hash. Keep an
export of the checkpoints (`guardrail audit checkpoints FILE`) somewhere the database's
administrators cannot write.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from guardrail.audit.chain import canonical_time
from guardrail.errors import ConfigError


@dataclass(frozen=True)
class Checkpoint:
    chain_seq: int
    entry_hash: str
    created_at: str
    key_id: str
    signature: str

    @property
    def message(self) -> bytes:
        return f"guardrail-audit-checkpoint|{self.chain_seq}|{self.entry_hash}|{self.created_at}".encode()

    def as_dict(self) -> dict[str, Any]:
        return {
            "chain_seq": self.chain_seq,
            "entry_hash": self.entry_hash,
            "created_at": self.created_at,
            "key_id": self.key_id,
            "signature": self.signature,
        }


def key_id(public_bytes: bytes) -> str:
    return hashlib.sha256(public_bytes).hexdigest()[:16]


class CheckpointSigner:
    """Signs checkpoints with an Ed25519 private key (PKCS#8 PEM). Its repr never shows the key."""

    def __init__(self, private_pem: bytes) -> None:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        key = serialization.load_pem_private_key(private_pem, None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ConfigError("the audit checkpoint key must be an Ed25519 private key")
        self._key = key
        raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self.key_id = key_id(raw)
        self.public_pem = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def __repr__(self) -> str:
        return f"CheckpointSigner(key_id={self.key_id!r})"

    @classmethod
    def from_file(cls, path: str | Path) -> CheckpointSigner:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"{p}: audit checkpoint key not found (create one with `guardrail init`)")
        if p.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            import warnings

            warnings.warn(f"{p}: the checkpoint key file is readable by others; run `chmod 600 {p}`", stacklevel=2)
        return cls(p.read_bytes())

    def sign(self, chain_seq: int, entry_hash: str, created_at: datetime) -> Checkpoint:
        unsigned = Checkpoint(chain_seq, entry_hash, canonical_time(created_at), self.key_id, "")
        return Checkpoint(**{**unsigned.as_dict(), "signature": self._key.sign(unsigned.message).hex()})


def create_key_files(private_path: str | Path) -> Path:
    """A new Ed25519 key: private PEM (owner-only) and `<name>.pub` beside it. Writes files."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private = Path(private_path)
    private.parent.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, stat.S_IRUSR | stat.S_IWUSR)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    public = private.with_suffix(".pub")
    public.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return public


def verify_checkpoint(checkpoint: Checkpoint, public_pem: bytes) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    key = serialization.load_pem_public_key(public_pem)
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigError("the audit checkpoint public key must be an Ed25519 key")
    try:
        key.verify(bytes.fromhex(checkpoint.signature), checkpoint.message)
    except (InvalidSignature, ValueError):
        return False
    return True


def read_checkpoint_file(path: str | Path) -> list[Checkpoint]:
    """Checkpoints exported as JSON lines."""
    checkpoints = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                checkpoints.append(Checkpoint(**json.loads(line)))
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"{path}:{number}: not a checkpoint ({exc})") from None
    return checkpoints
