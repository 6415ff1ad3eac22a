"""Regular expressions in policies, matched by RE2 (google-re2): time linear in the text's length
whatever the pattern, so no prompt can make a policy check hang (Python's `re` backtracks: `(a+)+$`
against 24 a's and a '!' took 3.4 s). RE2 has no backreferences and no lookaround; such patterns are
refused when the policy is loaded, at their file and line. `\\w`, `\\d` and `\\b` are ASCII in RE2:
use `\\pL` / `\\pN` for letters and digits of every script."""

from __future__ import annotations

from typing import Any

MAX_PATTERN_MEMORY = 8 << 20
"""Bytes RE2 may use for one compiled pattern (its default); larger patterns are refused at load."""


def compile_linear(pattern: str, *, multiline: bool = True) -> Any:
    """A compiled RE2 pattern (`^`/`$` at each line when `multiline`). Raises ValueError saying why."""
    import re

    import re2

    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"invalid regular expression {pattern!r}: {exc}") from None
    options = re2.Options()
    options.log_errors = False
    options.max_mem = MAX_PATTERN_MEMORY
    try:
        return re2.compile(f"(?m){pattern}" if multiline else pattern, options)
    except re2.error as exc:
        reason = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise ValueError(
            f"regular expression {pattern!r} cannot be matched in linear time (RE2: {reason}); "
            "backreferences and lookaround are not supported"
        ) from None
