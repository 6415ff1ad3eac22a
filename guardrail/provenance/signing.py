"""Signing images with C2PA manifests (c2pa-python). Signing is the last step: nothing touches the
bytes after it, and every signature is verified right after it is made (verify_after_sign).

One ImageSigner serves all threads: the c2pa Signer and Context are shared (a Builder is made per
image). A c2pa Signer does not survive fork(): construct the Guard in each worker process.
"""

from __future__ import annotations

import hashlib
import io
import stat
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from guardrail.errors import ConfigError, SigningError
from guardrail.images import MIME, encode
from guardrail.provenance.manifest import Disclosure, SoftBinding
from guardrail.request import CallContext, SignedImage

if TYPE_CHECKING:
    from guardrail.policy.decision import Decision

ALGORITHMS = ("es256", "es384", "es512", "ps256", "ps384", "ps512", "ed25519")
FORMATS = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}


class ImageSigner:
    """Signs images with a certificate chain and either a private key or a signing callable (KMS/HSM).

    `sign_callback(data: bytes) -> bytes` receives the bytes to sign and returns the raw signature
    for `algorithm`; the private key then never enters this process.
    """

    def __init__(
        self,
        *,
        certificate_chain: bytes,
        private_key: bytes | None = None,
        sign_callback: Callable[[bytes], bytes] | None = None,
        algorithm: str = "es256",
        timestamp_url: str | None = None,
        output_format: str = "png",
        jpeg_quality: int = 95,
        thumbnail: bool = False,
        trust_anchors: str | None = None,
        disclosure: Disclosure | None = None,
    ) -> None:
        """`trust_anchors`: PEM of the roots the manifests of input images (ingredients) are validated
        against, so that a parent signed by a trusted CA is recorded as trusted."""
        import c2pa

        if algorithm not in ALGORITHMS:
            raise ConfigError(f"signing algorithm {algorithm!r} is not one of {', '.join(ALGORITHMS)}")
        if output_format not in FORMATS:
            raise ConfigError(f"image format {output_format!r} is not one of {', '.join(FORMATS)}")
        if (private_key is None) == (sign_callback is None):
            raise ConfigError("give exactly one of a private key and a signing callable")
        self.algorithm = algorithm
        self.disclosure = disclosure or Disclosure()
        """What every manifest this signer makes discloses (provider, system, training and mining)."""
        self.format = FORMATS[output_format]
        self.mime = MIME[self.format]
        self.jpeg_quality = jpeg_quality
        self._c2pa = c2pa
        try:
            if sign_callback is not None:
                alg = getattr(c2pa.C2paSigningAlg, algorithm.upper())
                self._signer = c2pa.Signer.from_callback(sign_callback, alg, certificate_chain.decode(), timestamp_url)
            else:
                info = c2pa.C2paSignerInfo(
                    algorithm.encode(),
                    certificate_chain,
                    private_key,
                    timestamp_url.encode() if timestamp_url else None,
                )
                self._signer = c2pa.Signer.from_info(info)
        except c2pa.C2paError as exc:
            raise ConfigError(f"the C2PA signer could not be created: {exc}") from None
        thumbnail_settings = (
            {"enabled": True, "format": "jpeg", "long_edge": 256, "quality": "low"} if thumbnail else {"enabled": False}
        )
        settings: dict[str, Any] = {
            "verify": {"verify_after_sign": True, "remote_manifest_fetch": False, "ocsp_fetch": False},
            "builder": {"thumbnail": thumbnail_settings},
        }
        if trust_anchors:
            settings["trust"] = {"user_anchors": trust_anchors}
        self._context = c2pa.Context.from_dict(settings)

    def __repr__(self) -> str:
        return f"ImageSigner(algorithm={self.algorithm!r}, format={self.format!r})"

    @classmethod
    def from_files(cls, certificate_chain: str | Path, private_key: str | Path, **options: Any) -> ImageSigner:
        """A signer from PEM files. Warns when the key file is readable by others; never logs the key."""
        chain_path, key_path = Path(certificate_chain), Path(private_key)
        for path in (chain_path, key_path):
            if not path.is_file():
                raise ConfigError(
                    f"{path}: file not found (create a development CA with `guardrail init --dev-ca DIR`)"
                )
        if key_path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            warnings.warn(
                f"{key_path}: the signing key file is readable by others; run `chmod 600 {key_path}`", stacklevel=2
            )
        return cls(certificate_chain=chain_path.read_bytes(), private_key=key_path.read_bytes(), **options)

    def sign(
        self, image: Any, manifest: dict[str, Any], ingredients: Sequence[tuple[dict[str, Any], bytes, str]] = ()
    ) -> SignedImage:
        """Encode the image (bytes already encoded in this signer's format are taken as they are), sign
        it with the manifest (and ingredients: definition, bytes, mime), and return the signed bytes.
        Raises SigningError; the signature is verified before returning."""
        c2pa = self._c2pa
        source = image if isinstance(image, bytes) else encode(image, self.format, quality=self.jpeg_quality)
        output = io.BytesIO()
        try:
            builder = c2pa.Builder({**manifest, "format": self.mime}, context=self._context)
            for definition, data, mime in ingredients:
                builder.add_ingredient(definition, mime, io.BytesIO(data))
            builder.sign(self._signer, self.mime, io.BytesIO(source), output)
            signed = output.getvalue()
            with c2pa.Reader(self.mime, io.BytesIO(signed), context=self._context) as reader:
                label = (reader.get_active_manifest() or {}).get("label", "")
        except c2pa.C2paError as exc:
            raise SigningError(f"C2PA signing failed: {exc}") from exc
        return SignedImage(signed, self.mime, label, hashlib.sha256(signed).hexdigest())


def sign_call(
    signer: ImageSigner,
    images: list[Any],
    ctx: CallContext,
    manifests: Sequence[dict[str, Any]],
    *,
    each: Callable[..., Iterable[Any]] = map,
) -> list[SignedImage]:
    """Sign every image of one call with its manifest (call_manifests) and the call's ingredients;
    `each` maps the images (an executor's map signs them concurrently: one Signer and Context serve
    all threads). Raises SigningError."""
    from guardrail.provenance.manifest import ingredients

    parts = ingredients(ctx.request)

    def one(item: tuple[Any, dict[str, Any]]) -> SignedImage:
        image, manifest = item
        return signer.sign(image, manifest, parts)

    return list(each(one, zip(images, manifests, strict=True)))


def call_manifests(
    signer: ImageSigner,
    count: int,
    ctx: CallContext,
    decision: Decision,
    screening: dict[str, Any] | None = None,
    *,
    marking: dict[str, Any] | None = None,
    classifiers: dict[str, Any] | None = None,
    soft_bindings: Sequence[Sequence[SoftBinding]] = (),
) -> list[dict[str, Any]]:
    """The manifest definition of each of a call's `count` images: what sign_call signs them with (a
    call held for review keeps them, to sign at release)."""
    from guardrail.provenance.manifest import build_manifest, image_manifest

    manifest = build_manifest(
        ctx.request,
        decision,
        audit_id=ctx.call_id,
        policy_name=ctx.policy_name,
        policy_version=ctx.policy_version,
        privacy=ctx.privacy,
        screening=screening,
        marking=marking,
        classifiers=classifiers,
        disclosure=signer.disclosure,
    )
    return [
        image_manifest(manifest, ctx.call_id, index, soft_bindings[index] if index < len(soft_bindings) else ())
        for index in range(count)
    ]
