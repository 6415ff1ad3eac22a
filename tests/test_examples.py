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


def test_compliance_review_example(tmp_path) -> None:
    out = run_example("compliance_review.py", tmp_path)
    assert "denied last week: 6" in out and "log verified: True" in out
    assert "'report.html'" in out and "calls: 15" in out
    page = (tmp_path / ".review-demo" / "evidence" / "report.html").read_text()
    assert 'id="rules"' in page and "verified" in page


def test_multi_worker_postgres_example(tmp_path, postgres_server_url) -> None:
    out = run_example("multi_worker_postgres.py", tmp_path)
    assert "{'allowed': 5, 'denied by five-an-hour': 7}" in out  # the quota held across processes
    assert "one chain of 24 events from 4 workers: verified True" in out


def test_service_example(tmp_path) -> None:
    out = run_example("service.py", tmp_path)
    allowed, denied, held = out.strip().splitlines()
    assert allowed.startswith("200 'a watercolor fox'") and "C2PA Trusted" in allowed
    assert denied.startswith("403 ") and "'rules': ['no-graphic-violence']" in denied and "'audit_id'" in denied
    assert held.startswith("202 ") and "pending_review" in held


def test_sdxl_controlnet_lora_example(tmp_path) -> None:
    out = run_example("sdxl_controlnet_lora.py", tmp_path)
    assert "allowed: 1 image, adapters ['watercolor-v2']" in out and "LoRA file SHA-256 logged" in out
    assert "denied before generation: ['approved-loras']: adapter 'nsfw-style' is on the deny list" in out
