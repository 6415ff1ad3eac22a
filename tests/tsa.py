"""A real RFC 3161 time-stamping authority on 127.0.0.1 for the tests (no network): its own root and a
TSA certificate (critical extendedKeyUsage timeStamping), requests parsed and responses built with
asn1crypto's TSP and CMS structures, signed with cryptography. Also issues short-lived signing
certificates, to show a timestamped signature outliving its certificate."""

from __future__ import annotations

import datetime
import hashlib
import http.server
import itertools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from asn1crypto import algos, cms, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

NOW = datetime.datetime.now(datetime.timezone.utc)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[str, ec.EllipticCurvePrivateKey] | None = None,
    *,
    ca: bool = False,
    usage: x509.ObjectIdentifier | None = None,
    critical_usage: bool = False,
    lifetime: datetime.timedelta = datetime.timedelta(days=30),
    start: datetime.datetime | None = None,
) -> x509.Certificate:
    """A certificate for `key`, self-signed unless `issuer` (name, key) is given."""
    issuer_name, issuer_key = issuer or (subject, key)
    start = start or NOW - datetime.timedelta(minutes=5)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + lifetime)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(not ca, False, False, False, False, ca, ca, False, False), critical=True
        )  # digital signature for leaves; certificate and CRL signing for CAs
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
    )
    if usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=critical_usage)
    return builder.sign(issuer_key, hashes.SHA256())


def pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@dataclass
class TimeStampAuthority:
    url: str
    root: x509.Certificate
    requests: list[bytes]
    """The message imprints asked for, in order."""

    @property
    def trust_anchors(self) -> str:
        return pem(self.root).decode()


def _respond(body: bytes, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate, serials: Iterator[int]) -> bytes:
    request = tsp.TimeStampReq.load(body)
    when = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    info = {
        "version": "v1",
        "policy": "1.3.6.1.4.1.99999.1",
        "message_imprint": request["message_imprint"],
        "serial_number": next(serials),
        "gen_time": when,
        "accuracy": {"seconds": 1},
    }
    if request["nonce"].native is not None:
        info["nonce"] = request["nonce"].native
    tst_info = tsp.TSTInfo(info)
    content = tst_info.dump()
    der = cert.public_bytes(serialization.Encoding.DER)
    signing_cert = tsp.SigningCertificateV2({"certs": [{"cert_hash": hashlib.sha256(der).digest()}]})
    attributes = cms.CMSAttributes(
        [
            {"type": "content_type", "values": ["tst_info"]},
            {"type": "signing_time", "values": [cms.Time({"utc_time": when})]},
            {"type": "message_digest", "values": [hashlib.sha256(content).digest()]},
            {"type": "signing_certificate_v2", "values": [signing_cert]},
        ]
    )
    signature = key.sign(attributes.dump(), ec.ECDSA(hashes.SHA256()))
    certificate_ = asn1_x509.Certificate.load(der)
    signer = cms.SignerInfo(
        {
            "version": "v1",
            "sid": cms.SignerIdentifier(
                {
                    "issuer_and_serial_number": cms.IssuerAndSerialNumber(
                        {"issuer": certificate_.issuer, "serial_number": certificate_.serial_number}
                    )
                }
            ),
            "digest_algorithm": algos.DigestAlgorithm({"algorithm": "sha256"}),
            "signed_attrs": attributes,
            "signature_algorithm": algos.SignedDigestAlgorithm({"algorithm": "sha256_ecdsa"}),
            "signature": signature,
        }
    )
    signed = cms.SignedData(
        {
            "version": "v3",
            "digest_algorithms": [algos.DigestAlgorithm({"algorithm": "sha256"})],
            "encap_content_info": {"content_type": "tst_info", "content": tst_info},
            "certificates": [certificate_] if request["cert_req"].native else [],
            "signer_infos": [signer],
        }
    )
    token = cms.ContentInfo({"content_type": "signed_data", "content": signed})
    return tsp.TimeStampResp({"status": {"status": "granted"}, "time_stamp_token": token}).dump()


@contextmanager
def time_stamp_authority() -> Iterator[TimeStampAuthority]:
    """A TSA serving RFC 3161 over HTTP on 127.0.0.1 (an ephemeral port) until the block ends."""
    root_key, tsa_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    root = certificate("test TSA root", root_key, ca=True)
    tsa_cert = certificate(
        "test TSA", tsa_key, ("test TSA root", root_key), usage=ExtendedKeyUsageOID.TIME_STAMPING, critical_usage=True
    )
    serials = itertools.count(1)
    seen: list[bytes] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            seen.append(tsp.TimeStampReq.load(body)["message_imprint"]["hashed_message"].native)
            reply = _respond(body, tsa_key, tsa_cert, serials)
            self.send_response(200)
            self.send_header("Content-Type", "application/timestamp-reply")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield TimeStampAuthority(f"http://127.0.0.1:{server.server_address[1]}/tsa", root, seen)
    finally:
        server.shutdown()
        server.server_close()


def short_lived_signer(folder: Path, lifetime: datetime.timedelta) -> tuple[Path, Path, str]:
    """A signing chain (leaf valid for `lifetime` from now, and its CA) in `folder`: (chain, key, anchors)."""
    root_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    root = certificate("short-lived test root", root_key, ca=True)
    start = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=5)
    leaf = certificate(
        "short-lived signer", leaf_key, ("short-lived test root", root_key),
        usage=ExtendedKeyUsageOID.EMAIL_PROTECTION, lifetime=lifetime + datetime.timedelta(seconds=5), start=start,
    )  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "chain.pem").write_bytes(pem(leaf))
    (folder / "key.pem").write_bytes(key_pem(leaf_key))
    (folder / "key.pem").chmod(0o600)  # the signer refuses keys others can read
    return folder / "chain.pem", folder / "key.pem", pem(root).decode()
