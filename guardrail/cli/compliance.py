"""guardrail compliance check: which marks a regime asks of an image, and whether each is there."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from guardrail.cli.common import TrustAnchorsOption
from guardrail.cli.common import trust_anchors as read_trust_anchors
from guardrail.cli.output import JsonOption, console, emit_line

app = typer.Typer(help="Check images against the marking rules of a regime.", no_args_is_help=True)


class Regime(str, Enum):
    eu_art50 = "eu-art50"
    ca_sb942 = "ca-sb942"
    cn_gb45438 = "cn-gb45438"


@app.command("check")
def check(
    images: Annotated[list[Path], typer.Argument(help="Image files to check.")],
    regime: Annotated[Regime, typer.Option("--regime", "-r", help="The rules to check against.")],
    trust_anchors: TrustAnchorsOption = None,
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", envvar="GUARDRAIL_CONFIG", help="guardrail.yaml: its trust anchors."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """For each image, every mark the regime requires — signed manifest, timestamp, watermark,
    disclosure fields, visible label — with the rule it comes from and the evidence found. Exits 0
    when every image carries every mark, 1 when one is missing, 2 for a file that is no image. A
    signature counts only from a trusted signer (--trust-anchors or the config's anchors). Reads only.

    Example: guardrail compliance check out.png --regime eu-art50 --config guardrail.yaml
    """
    from guardrail.errors import InputError
    from guardrail.images import read_limited
    from guardrail.marking.compliance import check_bytes

    anchors = read_trust_anchors(trust_anchors, config)
    all_ok = True
    for image in images:
        try:
            result = check_bytes(read_limited(image), regime.value, source=str(image), trust_anchors=anchors)
        except (OSError, InputError) as exc:
            raise typer.BadParameter(str(exc), param_hint="IMAGES") from None
        all_ok &= result.ok
        if as_json:
            emit_line(result.as_dict())
            continue
        verdict = "[green]meets[/green]" if result.ok else "[red]misses[/red]"
        console.print(f"{verdict} {regime.value}: {image}", highlight=False)
        for finding in result.findings:
            mark = "[green]ok[/green]     " if finding.ok else "[red]missing[/red]"
            console.print(f"  {mark} {finding.requirement}: {finding.asks}", highlight=False)
            console.print(f"          {finding.evidence}", markup=False, highlight=False)
            console.print(f"          [dim]{finding.rule}[/dim]", highlight=False)
    if not all_ok:
        raise typer.Exit(1)
