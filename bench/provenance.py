"""C2PA sign and verify cost per image, and bytes added, at 512 and 1024 px in PNG, JPEG and WebP.

Goal (issue 3): sign <= 5 ms and verify <= 5 ms for a 1024 px PNG on 2 cores, <= 5 KB added
without a thumbnail. Encoding the pixels (which any saver pays) is measured apart from signing;
the thumbnail variant is measured for comparison.
Run: .venv/bin/python bench/provenance.py
"""

from __future__ import annotations

import io
import sys
import tempfile
from pathlib import Path

import c2pa
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).parent))

from _stats import median_ms

from guardrail.images import encode
from guardrail.provenance.devca import create_dev_ca
from guardrail.provenance.signing import FORMATS, ImageSigner
from guardrail.provenance.verify import verify_bytes

MANIFEST = {
    "claim_generator_info": [{"name": "guardrail", "version": "bench"}],
    "title": "bench",
    "assertions": [
        {
            "label": "c2pa.actions.v2",
            "data": {
                "actions": [
                    {
                        "action": "c2pa.created",
                        "digitalSourceType": "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia",
                    }
                ]
            },
        },
        {"label": "org.guardrail.governance", "data": {"decision": "allow", "audit_id": "0" * 32, "rules": []}},
    ],
}


def c2pa_sign_only(signer: ImageSigner, encoded: bytes) -> None:
    """What ImageSigner.sign does after encoding: the builder, the signature and verify-after-sign."""
    builder = c2pa.Builder({**MANIFEST, "format": signer.mime}, context=signer._context)
    builder.sign(signer._signer, signer.mime, io.BytesIO(encoded), io.BytesIO())


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        ca = create_dev_ca(Path(folder) / "ca")
        anchors = ca.trust_anchors.read_text()
        print("sign: c2pa builder, signature, verify-after-sign; total: ImageSigner.sign (encode, sign, read label)")
        header = f"{'size':>5} {'format':<5} {'encode ms':>9} {'sign ms':>8} {'verify ms':>9} {'bytes added':>11}"
        print(f"{header} {'guardrail total ms':>18}")
        for size in (512, 1024):
            image = Image.effect_noise((size, size), 40).convert("RGB")
            for fmt in FORMATS:
                signer = ImageSigner.from_files(ca.chain, ca.key, output_format=fmt)
                encoded = encode(image, signer.format)
                signed = signer.sign(image, MANIFEST).data
                encode_ms = median_ms(lambda i=image, s=signer: encode(i, s.format), 10)
                sign_ms = median_ms(lambda s=signer, e=encoded: c2pa_sign_only(s, e), 30)
                verify_ms = median_ms(lambda d=signed: verify_bytes(d, trust_anchors=anchors), 30)
                total_ms = median_ms(lambda i=image, s=signer: s.sign(i, MANIFEST), 10)
                added = len(signed) - len(encoded)
                row = f"{size:>5} {fmt:<5} {encode_ms:>9.1f} {sign_ms:>8.2f} {verify_ms:>9.2f} {added:>11,}"
                print(f"{row} {total_ms:>18.1f}")
        image = Image.effect_noise((1024, 1024), 40).convert("RGB")
        thumb = ImageSigner.from_files(ca.chain, ca.key, thumbnail=True)
        encoded = encode(image, "PNG")
        thumb_ms = median_ms(lambda: c2pa_sign_only(thumb, encoded), 10)
        thumb_added = len(thumb.sign(image, MANIFEST).data) - len(encoded)
        print(f"1024 png with a small JPEG thumbnail: sign {thumb_ms:.1f} ms, {thumb_added:,} bytes added")


if __name__ == "__main__":
    main()
