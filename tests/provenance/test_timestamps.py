"""Trusted timestamps: with provenance.timestamp_url, every signature is countersigned by an RFC 3161
authority (a real one, on 127.0.0.1), verify reports the time, and a timestamped signature stays valid
after its signing certificate expires while one without a timestamp does not."""

import datetime
import time
from pathlib import Path

import pytest
import skimage.data
from PIL import Image

import guardrail
from guardrail.marking.compliance import check_bytes
from guardrail.provenance.verify import verify_bytes
from tests.cli.test_cli import run
from tests.tsa import short_lived_signer, time_stamp_authority

POLICY = "name: p\nprivacy: {prompts: plaintext}\nprovenance: {required: true}\n"


def sign(database: str, chain: Path, key: Path, url: str | None, count: int = 1) -> list[bytes]:
    photo = Image.fromarray(skimage.data.coffee())
    provenance = {"certificate_chain": str(chain), "private_key": str(key), "timestamp_url": url}
    with guardrail.Guard(policy=guardrail.parse_policy(POLICY), database=database, provenance=provenance) as guard:
        out = guard.wrap(lambda prompt: [photo.copy() for _ in range(count)])("coffee")
    return [item.data for item in out.governance.signed]


def test_signatures_are_timestamped_and_verify_reports_it(sqlite_url: str, dev_ca, tmp_path: Path, capsys) -> None:
    with time_stamp_authority() as tsa:
        files = sign(sqlite_url, dev_ca.chain, dev_ca.key, tsa.url, count=2)
        assert len(tsa.requests) == 2  # one countersignature per image
    anchors = dev_ca.trust_anchors.read_text() + tsa.trust_anchors
    before = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=1)
    for data in files:
        result = verify_bytes(data, trust_anchors=anchors)
        assert result.ok() and result.timestamp is not None
        assert datetime.datetime.fromisoformat(result.timestamp) >= before.replace(microsecond=0)
        assert check_bytes(data, "eu-art50", trust_anchors=anchors).ok  # manifest, timestamp, watermark, AI
    path = tmp_path / "stamped.png"
    path.write_bytes(files[0])
    (tmp_path / "anchors.pem").write_text(anchors)
    code, out, _ = run(capsys, "verify", str(path), "--trust-anchors", str(tmp_path / "anchors.pem"))
    assert code == 0 and f"timestamp: {verify_bytes(files[0]).timestamp}" in out
    assert verify_bytes(sign(sqlite_url, dev_ca.chain, dev_ca.key, None)[0]).timestamp is None


@pytest.mark.slow
def test_a_timestamped_signature_outlives_its_certificate(sqlite_url: str, tmp_path: Path) -> None:
    chain, key, anchors = short_lived_signer(tmp_path / "short", datetime.timedelta(seconds=3))
    with time_stamp_authority() as tsa:
        stamped = sign(sqlite_url, chain, key, tsa.url)[0]
    plain = sign(sqlite_url, chain, key, None)[0]
    trusted = anchors + tsa.trust_anchors
    assert verify_bytes(stamped, trust_anchors=trusted).ok() and verify_bytes(plain, trust_anchors=trusted).ok()
    time.sleep(4)  # the signing certificate has expired
    assert verify_bytes(stamped, trust_anchors=trusted).ok()  # checked at the authority's time
    expired = verify_bytes(plain, trust_anchors=trusted)
    assert not expired.ok() and "signingCredential.expired" in expired.failures


def test_a_timestamp_url_must_be_http(sqlite_url: str, dev_ca) -> None:
    provenance = {"certificate_chain": str(dev_ca.chain), "private_key": str(dev_ca.key), "timestamp_url": "file:///x"}
    with pytest.raises(guardrail.ConfigError, match="timestamp_url"):
        guardrail.Guard(policy=guardrail.parse_policy(POLICY), database=sqlite_url, provenance=provenance)
