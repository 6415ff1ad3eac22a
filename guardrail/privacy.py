"""How prompts are written to the audit log: keyed HMAC-SHA256 (default), plaintext, or redacted.

The HMAC lets an analyst prove that a given prompt was used (by recomputing it with the key)
without the log holding the text. The key id is recorded so keys can be rotated.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from guardrail.errors import ConfigError

KEY_ENV = "GUARDRAIL_HMAC_KEY"
MIN_KEY_BYTES = 16


@dataclass(frozen=True, repr=False)
class HmacKey:
    """A secret key for prompt HMACs. Its repr never shows the secret."""

    secret: bytes

    @property
    def key_id(self) -> str:
        """A public identifier: the first 16 hex digits of the key's SHA-256."""
        return hashlib.sha256(b"guardrail-key-id:" + self.secret).hexdigest()[:16]

    def __repr__(self) -> str:
        return f"HmacKey(key_id={self.key_id!r})"

    def digest(self, text: str) -> str:
        return hmac.new(self.secret, text.encode("utf-8"), hashlib.sha256).hexdigest()

    @classmethod
    def from_file(cls, path: str | Path) -> HmacKey:
        """Read a key file (hex text). Raises ConfigError naming the file when it is unusable."""
        p = Path(path)
        try:
            text = p.read_text(encoding="ascii").strip()
            secret = bytes.fromhex(text)
        except FileNotFoundError:
            raise ConfigError(f"{p}: HMAC key file not found (create one with `guardrail init`)") from None
        except (ValueError, UnicodeDecodeError):
            raise ConfigError(f"{p}: HMAC key file must hold the key as hex digits") from None
        if len(secret) < MIN_KEY_BYTES:
            raise ConfigError(f"{p}: HMAC key is {len(secret)} bytes; at least {MIN_KEY_BYTES} are required")
        if p.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            warnings.warn(f"{p}: the HMAC key file is readable by others; run `chmod 600 {p}`", stacklevel=2)
        return cls(secret)

    @classmethod
    def from_env(cls) -> HmacKey | None:
        value = os.environ.get(KEY_ENV)
        if not value:
            return None
        try:
            secret = bytes.fromhex(value.strip())
        except ValueError:
            raise ConfigError(f"{KEY_ENV} must hold the key as hex digits") from None
        if len(secret) < MIN_KEY_BYTES:
            raise ConfigError(f"{KEY_ENV} is {len(secret)} bytes; at least {MIN_KEY_BYTES} are required")
        return cls(secret)


def create_key_file(path: str | Path) -> HmacKey:
    """Write a new random key (32 bytes, hex) readable by the owner only. Writes the file."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, stat.S_IRUSR | stat.S_IWUSR)
    key = HmacKey(secrets.token_bytes(32))
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(key.secret.hex() + "\n")
    return key


@dataclass(frozen=True)
class PromptPrivacy:
    """Turns prompt texts into what the audit log stores, per the policy's privacy mode."""

    mode: str
    key: HmacKey | None = None

    def __post_init__(self) -> None:
        if self.mode == "hmac" and self.key is None:
            raise ConfigError(
                "the policy stores prompts as keyed HMACs (privacy.prompts: hmac) but no key is configured: "
                f"set privacy.hmac_key_file in guardrail.yaml, set {KEY_ENV}, or pass hmac_key= to Guard"
            )

    @property
    def key_id(self) -> str | None:
        return self.key.key_id if self.mode == "hmac" and self.key else None

    def protect(self, texts: tuple[str, ...] | list[str]) -> list[Any]:
        if self.mode == "plaintext":
            return list(texts)
        if self.mode == "redacted":
            return [None for _ in texts]
        assert self.key is not None
        return [self.key.digest(t) for t in texts]
