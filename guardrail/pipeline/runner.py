"""The loop that runs one call through the declared stages: it times each stage, stops at a deny or
an error, and always finishes through one exit (the audit outcome, then the result or the error)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from guardrail.pipeline.state import CallState, Stage


class CallPipeline:
    """The stages of a call, declared once, in order. `stages` run until one denies or fails; the
    `finish` stages (audit the outcome, attach or refuse the result) run for every call on record."""

    def __init__(self, stages: Sequence[Stage], finish: Sequence[Stage]) -> None:
        self.stages = tuple(stages)
        self.finish = tuple(finish)

    @property
    def names(self) -> tuple[str, ...]:
        """Every stage's name, in the order a call that is allowed runs them."""
        return tuple(stage.name for stage in (*self.stages, *self.finish))

    def run(self, state: CallState) -> Any:
        """Run one call; return what the wrapper returns. An error before the call is on record (the
        request event written) propagates as it is; after, it is audited as the outcome and re-raised."""
        timings: dict[str, float] = {}
        for stage in self.stages:
            start = time.perf_counter()
            try:
                state = stage(state)
            except BaseException as exc:
                if not state.on_record:
                    raise
                state = state.evolve(error=exc)
            timings[stage.name] = round((time.perf_counter() - start) * 1000, 3)
            if state.error is not None or state.denied:
                break
        state = state.evolve(timings=timings)
        for stage in self.finish:
            state = stage(state)
        if state.error is not None:
            raise state.error
        return state.result
