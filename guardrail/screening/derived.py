"""Search indexes derived from a reference set's arrays: built once per loaded set, and saved in the
set's folder under a name that carries the content hash of what they index, so the next process
loads them and a changed set never uses a stale one."""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")
log = logging.getLogger("guardrail.screening")

_cache: weakref.WeakKeyDictionary[Any, dict[str, tuple[np.ndarray, Any]]] = weakref.WeakKeyDictionary()
"""Per set and kind: (the array indexed, its index). The array itself is kept, not its id(): a
freed array's id can be reused by its replacement, which would serve a stale index."""
_lock = threading.Lock()


def derived_index(
    refset: Any,
    kind: str,
    content: np.ndarray,
    build: Callable[[], T],
    *,
    load: Callable[[Path], T] | None = None,
    save: Callable[[T, Path], None] | None = None,
) -> T:
    """The `kind` index of `refset` over `content`: from memory, from the set's folder, or built (and
    saved, replacing older ones of that kind). Without load/save it lives in memory only."""
    with _lock:
        per_set = _cache.setdefault(refset, {})
        cached = per_set.get(kind)
        if cached is not None and cached[0] is content:
            return cached[1]  # type: ignore[no-any-return]
        index: T
        if load is None or save is None:
            index = build()
        else:
            folder = Path(refset.folder)
            path = folder / f"{kind}-{hashlib.sha256(content.tobytes()).hexdigest()[:16]}.faiss"
            if path.exists():
                index = load(path)
            else:
                index = build()
                _store(folder, kind, path, lambda target: save(index, target))
        per_set[kind] = (content, index)
        return index


def _store(folder: Path, kind: str, path: Path, write: Callable[[Path], None]) -> None:
    """Save atomically, replacing older indexes of the kind; a read-only folder only costs a rebuild
    in the next process, so it is logged, not raised."""
    tmp = folder / f".tmp-{os.getpid()}-{threading.get_ident()}-{path.name}"
    try:
        write(tmp)
        os.replace(tmp, path)
        for stale in folder.glob(f"{kind}-*.faiss"):
            if stale != path:
                stale.unlink(missing_ok=True)
    except (OSError, RuntimeError) as exc:  # faiss reports I/O failures as RuntimeError
        tmp.unlink(missing_ok=True)
        log.warning("could not save the %s index in %s (%s); it lives in memory for this process", kind, folder, exc)
