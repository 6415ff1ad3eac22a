"""Where the shipped data lives: inside the wheel (guardrail/_data) or, in a checkout, at the repo root."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def data_dir(name: str) -> Path:
    """The folder of shipped `migrations` or `policies`."""
    for candidate in (_PACKAGE / "_data" / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"guardrail's {name!r} folder is missing from this installation")
