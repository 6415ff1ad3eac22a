"""faiss searches on the calling thread only.

faiss parallelises each search with OpenMP, whose threads spin for a while after every parallel
region. A guarded call already spreads its images over the Guard's worker pool, so those spinning
threads only compete with the pool: measured by bench/full_call.py on 2 cores, screening 4 x 512 px
took 140 ms per call with OpenMP and 70 ms without, and the stages after it slowed down too. The
setting is per thread in OpenMP, so the caller's own faiss work elsewhere keeps its threads.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def single_threaded() -> Iterator[None]:
    """Run the faiss calls inside on this thread alone, restoring its OpenMP setting after."""
    import faiss

    before = faiss.omp_get_max_threads()
    if before == 1:
        yield
        return
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)
