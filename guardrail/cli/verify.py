"""guardrail verify: check the C2PA provenance of images, and their audit record."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from guardrail.cli.common import TrustAnchorsOption
from guardrail.cli.common import trust_anchors as read_trust_anchors
from guardrail.cli.output import JsonOption, console, emit_line

_COLOURS = {"Trusted": "green", "Valid": "yellow", "Invalid": "red", "NoManifest": "red"}


def verify(
    images: Annotated[list[Path], typer.Argument(help="Image files to verify.")],
    trust_anchors: TrustAnchorsOption = None,
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", envvar="GUARDRAIL_CONFIG", help="guardrail.yaml: its database and anchors."),
    ] = None,
    database: Annotated[
        str | None,
        typer.Option("--database", "-d", envvar="GUARDRAIL_DATABASE", help="Audit database to check against."),
    ] = None,
    allow_untrusted: Annotated[
        bool,
        typer.Option("--allow-untrusted", help="Accept a valid signature from any signer (no trust anchor)."),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Validate C2PA manifests: state (Trusted, Valid, Invalid, NoManifest), failure codes, generator,
    governance and, with a database, the audit record and whether the file is the one logged.
    Exits 0 only when every image is valid and signed by a trusted signer (a certificate chain to
    --trust-anchors, or to the config's provenance.trust_anchors); --allow-untrusted accepts any
    valid signature, since anyone can sign with a certificate of their own. Reads only.

    Example: guardrail verify out.png --trust-anchors .guardrail/dev-ca/trust-anchors.pem --config guardrail.yaml
    """
    from guardrail.audit.query import audit_record
    from guardrail.audit.store import AuditStore, database_url
    from guardrail.config import load_config
    from guardrail.images import probe_image, read_limited
    from guardrail.provenance.manifest import governance_summary
    from guardrail.provenance.verify import verify_bytes

    url = database_url(database) if database else None
    if config is not None:
        settings = load_config(config)
        url = url or database_url(settings.database, settings.base_dir)
    anchors = read_trust_anchors(trust_anchors, config)
    store = AuditStore(url, migrate="check") if url else None
    all_ok = True
    try:
        for image in images:
            try:
                data = read_limited(image)
                probe_image(data, str(image))  # an empty or non-image file is an input error, not an invalid manifest
            except (OSError, ValueError) as exc:
                raise typer.BadParameter(str(exc), param_hint="IMAGES") from None
            result = verify_bytes(data, source=str(image), trust_anchors=anchors)
            if store is not None and result.governance:
                result = result.with_audit(audit_record(store.engine, result))
            ok = result.ok(require_trusted=not allow_untrusted)
            all_ok &= ok
            why = result.why_not(require_trusted=not allow_untrusted)
            if as_json:
                emit_line({**result.as_dict(), "ok": ok, "why_not": why or None})
                continue
            colour = _COLOURS.get(result.state, "red")
            console.print(f"[{colour}]{result.state}[/{colour}] {image}" + ("" if ok else "  [red]FAILED[/red]"))
            if why:
                console.print(f"  why: {why}", markup=False, highlight=False)
            for code in result.failures:
                console.print(f"  failure: {code}")
            if result.timestamp:
                console.print(
                    f"  timestamp: {result.timestamp} (RFC 3161: the signature stays valid after its "
                    "certificate expires, when the authority is trusted)",
                    markup=False,
                    highlight=False,
                )
            if result.governance is not None:
                console.print(f"  governance: {governance_summary(result.governance)}", markup=False)
            if result.audit is not None:
                found = "found" if result.audit.get("found") else "NOT FOUND"
                matches = "matches" if result.audit.get("hash_matches") else "DOES NOT match"
                console.print(f"  audit record: {found}; the file {matches} the logged hash")
    finally:
        if store is not None:
            store.close()
    if not all_ok:
        raise typer.Exit(1)
