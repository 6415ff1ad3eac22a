"""A policy that follows its files: a valid edit applies to the next call, an invalid one is refused
and the last good policy stays in force. Files are checked at most once per interval, on the
calling thread (no watcher thread to manage, nothing to do between calls)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from guardrail.errors import GuardrailError, PolicyError, Problem
from guardrail.policy.engine import PolicyEngine
from guardrail.policy.load import load_policy, policy_files

Stamp = tuple[tuple[str, int, int], ...]


class PolicySource:
    """The compiled policy of a file (and the files it extends), reloaded when they change."""

    def __init__(
        self,
        path: str | Path,
        *,
        environment: str | None = None,
        interval_s: float = 1.0,
        accept: Callable[[PolicyEngine], None] = lambda engine: None,
        on_change: Callable[[PolicyEngine, GuardrailError | None], None] = lambda engine, error: None,
    ) -> None:
        """`accept` may raise a GuardrailError to refuse a policy; `on_change` hears of every applied
        or refused change, with the policy in force afterwards."""
        self.path = Path(path)
        self.environment = environment
        self.interval_s = interval_s
        self._accept = accept
        self._on_change = on_change
        self._lock = threading.Lock()
        self._engine = PolicyEngine(load_policy(self.path, environment=environment))
        self._stamp = self._read_stamp()
        self._checked = time.monotonic()

    @property
    def engine(self) -> PolicyEngine:
        """The policy in force now, after checking the files if the interval has passed."""
        if time.monotonic() - self._checked >= self.interval_s:
            self._check()
        return self._engine

    def _read_stamp(self) -> Stamp:
        try:
            files = policy_files(self.path)
        except PolicyError:
            files = [self.path]
        stamps = []
        for f in files:
            try:
                st = f.stat()
                stamps.append((str(f), st.st_mtime_ns, st.st_size))
            except OSError:
                stamps.append((str(f), -1, -1))
        return tuple(stamps)

    def _check(self) -> None:
        with self._lock:
            self._checked = time.monotonic()
            stamp = self._read_stamp()
            if stamp == self._stamp:
                return
            self._stamp = stamp  # a refused edit is not retried until the files change again
            try:
                engine = PolicyEngine(load_policy(self.path, environment=self.environment))
                self._accept(engine)
            except GuardrailError as error:
                self._on_change(self._engine, error)
                return
            except Exception as exc:  # whatever an edit breaks, the last good policy stays in force
                problem = Problem(f"the policy could not be loaded: {type(exc).__name__}: {exc}", str(self.path))
                self._on_change(self._engine, PolicyError([problem]))
                return
            if engine.version != self._engine.version:
                self._engine = engine
                self._on_change(engine, None)
