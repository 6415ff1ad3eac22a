import os
import subprocess
import sys

from tests.conftest import REPO


def test_quickstart_runs_offline(tmp_path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, str(REPO / "examples" / "quickstart.py")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "allowed" in out and "modified" in out and "denied" in out
    assert "no-graphic-violence" in out
    assert (tmp_path / ".quickstart" / "allowed.png").is_file()


def test_quickstart_traces_a_stripped_copy(tmp_path) -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "examples" / "quickstart.py")],
        cwd=tmp_path, env={**os.environ, "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "traced" in result.stdout and "(no manifest left) -> fingerprint" in " ".join(result.stdout.split())


def test_trace_a_leaked_image_example(tmp_path) -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "examples" / "trace_a_leaked_image.py")],
        cwd=tmp_path, env={**os.environ, "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "its manifest: NoManifest" in out and "traced by fingerprint (weak evidence)" in out and "user bob" in out
