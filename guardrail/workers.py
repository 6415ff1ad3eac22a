"""Spreading per-image work over the Guard's worker pool.

Stages receive `each`, the pool's map (or the builtin `map` outside a Guard). With as many images as
cores, one task per image keeps every core busy; with fewer (one 1024-px image), a stage splits an
image's work into independent pieces, and `spread` runs them in at most one chunk per core, since a
hop to a worker costs about 0.35 ms here.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")

Each = Callable[..., Iterable[Any]]


def cores() -> int:
    return os.cpu_count() or 1


def spread(each: Each, fn: Callable[[T], R], items: list[T]) -> list[R]:
    """fn over the items, in order, through `each` in at most one chunk per core. Never call it from
    a task already running on the pool: the pool's threads would wait on each other."""
    if len(items) <= 1 or each is map:
        return [fn(item) for item in items]
    size = -(-len(items) // cores())
    chunks = [items[start : start + size] for start in range(0, len(items), size)]
    return [result for done in each(lambda chunk: [fn(item) for item in chunk], chunks) for result in done]
