import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO


def run_example(name: str, cwd: Path) -> str:
    """Run an example script offline in `cwd`; its standard output (it must exit 0)."""
    result = subprocess.run(
        [sys.executable, str(REPO / "examples" / name)],
        cwd=cwd,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_quickstart_runs_offline_and_traces_a_stripped_copy(tmp_path) -> None:
    out = run_example("quickstart.py", tmp_path)
    assert "allowed" in out and "modified" in out and "denied" in out
    assert "no-graphic-violence" in out
    assert (tmp_path / ".quickstart" / "allowed.png").is_file()
    assert "traced" in out and "(no manifest left) -> fingerprint" in " ".join(out.split())
    assert "0 images returned, 1 held for review" in out and "approved by dana and erin: released, C2PA Trusted" in out


def test_trace_a_leaked_image_example(tmp_path) -> None:
    out = run_example("trace_a_leaked_image.py", tmp_path)
    assert "its manifest: NoManifest" in out and "user bob" in out
    heavy, light = out.split("reencoded.jpg")
    assert "traced by watermark (strong evidence)" in heavy
    assert "traced by watermark (strong evidence)" in light and "traced by fingerprint (weak evidence)" in light
