"""guardrail's signed images validate with an independent C2PA implementation (@trustnxt/c2pa-ts, npm)."""

import json
import subprocess
from pathlib import Path

import pytest

from guardrail.testing import sample_image

HERE = Path(__file__).parent


def c2pa_ts(*files: Path) -> list[dict]:
    if not (HERE / "node_modules" / "@trustnxt" / "c2pa-ts").is_dir():
        pytest.fail("run `make test` (it installs tests/interop/node_modules with npm ci)")
    result = subprocess.run(
        ["node", str(HERE / "c2pa_ts_verify.mjs"), *map(str, files)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize("fmt", ["png", "jpeg"])
def test_signed_images_validate_independently(sqlite_url, hmac_key, dev_ca, tmp_path, fmt) -> None:
    import guardrail
    from tests.conftest import DEFAULT_POLICY, make_signer

    signer = make_signer(dev_ca, output_format=fmt)
    with guardrail.Guard(policy=DEFAULT_POLICY, database=sqlite_url, hmac_key=hmac_key, signer=signer) as guard:
        out = guard.wrap(lambda prompt, negative_prompt="": [sample_image(96)])(
            "a fox", negative_prompt="nsfw, nudity, gore"
        )
    good = out.governance.save(0, tmp_path / f"good.{fmt}")
    data = bytearray(good.read_bytes())
    data[len(data) // 2] ^= 0x01
    bad = tmp_path / f"bad.{fmt}"
    bad.write_bytes(bytes(data))
    good_result, bad_result = c2pa_ts(good, bad)
    assert good_result["valid"] is True, good_result
    assert good_result["label"] == out.governance.signed[0].manifest_label
    assert "assertion.dataHash.match" in good_result["codes"]
    assert bad_result["valid"] is False and "assertion.dataHash.mismatch" in bad_result["codes"]
