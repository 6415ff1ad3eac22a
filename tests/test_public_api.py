import subprocess
import sys

import guardrail


def test_all_is_sorted_and_complete() -> None:
    assert guardrail.__all__ == sorted(guardrail.__all__)
    for name in guardrail.__all__:
        assert getattr(guardrail, name) is not None
    public = {n for n in dir(guardrail) if not n.startswith("_")}
    assert public == set(guardrail.__all__) - {"__version__"}


def test_import_is_light() -> None:
    code = "import sys, guardrail; print(sorted(m for m in ('torch','diffusers','open_clip','sqlalchemy','pydantic') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_errors_share_one_root() -> None:
    for name in (
        "ConfigError",
        "PolicyError",
        "PolicyViolation",
        "AuditError",
        "AuditWriteError",
        "DatabaseUnavailable",
    ):
        assert issubclass(getattr(guardrail, name), guardrail.GuardrailError)
