"""guardrail trace: lead an image, or a copy of it, back to the call that made it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from guardrail.cli.common import ConfigOption, DatabaseOption, TrustAnchorsOption, resolve_database
from guardrail.cli.common import trust_anchors as read_trust_anchors
from guardrail.cli.output import JsonOption, console, emit_line


def trace(
    images: Annotated[list[Path], typer.Argument(help="Image files to trace (copies, screenshots, re-encodes).")],
    trust_anchors: TrustAnchorsOption = None,
    max_distance: Annotated[
        int, typer.Option("--max-distance", help="Fingerprint bits (of 64) a match may differ by.", min=0, max=32)
    ] = 10,
    config: ConfigOption = Path("guardrail.yaml"),
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Find the call each image came from: its C2PA manifest first (the audit id it names, and whether
    the file is the one logged), then its watermark (a token logged with one output, which survives
    re-encoding, resizing, crops and colour changes that strip a manifest), then the fingerprint
    registry (the closest logged outputs: weaker evidence, for unmarked images). Prints the
    evidence and each call's audit record. Exits 0 when every image was traced, 1 when one was not,
    2 for a file that is no image. Reads only.

    Example: guardrail trace leaked.jpg --config guardrail.yaml --json
    """
    from guardrail.audit.store import AuditStore
    from guardrail.images import read_limited
    from guardrail.marking.trace import trace_bytes

    anchors = read_trust_anchors(trust_anchors, config)
    store = AuditStore(resolve_database(config, database), migrate="check")
    all_found = True
    try:
        for image in images:
            try:
                data = read_limited(image)
            except (OSError, ValueError) as exc:
                raise typer.BadParameter(str(exc), param_hint="IMAGES") from None
            result = trace_bytes(
                data, store.engine, source=str(image), trust_anchors=anchors, max_distance=max_distance
            )
            all_found &= result.found
            if as_json:
                emit_line(result.as_dict())
                continue
            verdict = "[green]traced[/green]" if result.found else "[red]not found[/red]"
            console.print(f"{verdict} {image}", highlight=False)
            if result.fingerprint_only:
                console.print(
                    "  only a fingerprint matched: weaker evidence than a manifest or a watermark", highlight=False
                )
            for item in result.evidence:
                where = f" image {item.image_index}" if item.image_index is not None else ""
                line = f"  {item.method} [{item.strength}] call {item.audit_id}{where}: {item.detail}"
                console.print(line, markup=False, highlight=False)
            for record in result.records.values():
                if record.get("found"):
                    rules = ", ".join(record["rules"]) or "-"
                    console.print(
                        f"  call {record['call_id']}: {record['started_at']} user {record['user']} "
                        f"{record['status']} ({record['decision']}; rules {rules}) model {record['model']} "
                        f"policy {record['policy']}",
                        markup=False,
                        highlight=False,
                    )
    finally:
        store.close()
    if not all_found:
        raise typer.Exit(1)
