"""Spreading per-image work over a pool: results in order, at most one chunk per core, and the
faiss searches keep their OpenMP setting on the calling thread only."""

import os
import threading
from concurrent.futures import ThreadPoolExecutor

from guardrail.screening.threads import single_threaded
from guardrail.workers import spread


def test_spread_keeps_order_and_sends_one_chunk_per_core() -> None:
    chunks: list[int] = []

    def each(fn, items):
        items = list(items)
        chunks.append(len(items))
        with ThreadPoolExecutor(2) as pool:
            return list(pool.map(fn, items))

    assert spread(each, lambda n: n * n, list(range(10))) == [n * n for n in range(10)]
    assert chunks == [min(10, os.cpu_count() or 1)]
    assert spread(each, lambda n: -n, [3]) == [-3] and len(chunks) == 1  # one item: no hop to a worker
    assert spread(map, str, [1, 2]) == ["1", "2"]


def test_faiss_runs_single_threaded_inside_and_restores_the_setting() -> None:
    import faiss

    before = faiss.omp_get_max_threads()
    with single_threaded():
        assert faiss.omp_get_max_threads() == 1
    assert faiss.omp_get_max_threads() == before
    seen: list[int] = []

    def other_thread() -> None:
        seen.append(faiss.omp_get_max_threads())

    with single_threaded():
        worker = threading.Thread(target=other_thread)
        worker.start()
        worker.join()
    assert seen == [before]  # the setting is the calling thread's own
