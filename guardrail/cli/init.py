"""guardrail init: a working set-up in one folder (config, default policy, HMAC key, database)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from guardrail.cli.output import console


def init(
    directory: Annotated[Path, typer.Argument(help="Folder to set up.", file_okay=False)] = Path("."),
    database: Annotated[
        str | None, typer.Option("--database", "-d", help="Database URL (default guardrail.db).")
    ] = None,
    dev_ca: Annotated[
        Path | None, typer.Option("--dev-ca", help="Create a development CA (NOT for production) here; sign with it.")
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite guardrail.yaml and the policy, never the key.")
    ] = False,
) -> None:
    """Create guardrail.yaml, policies/default.yaml, a private HMAC key and the audit database. Writes files.

    Example: guardrail init ./governance --dev-ca ./governance/.guardrail/dev-ca
    """
    from guardrail.project import init_project

    project = init_project(directory, database=database, dev_ca=dev_ca, force=force)
    key_note = "created (owner-only; back it up, never commit it)" if project.key_created else "kept as it was"
    console.print(f"config    {project.config}")
    console.print(f"policy    {project.policy}")
    console.print(f"hmac key  {project.key} {key_note}")
    console.print(f"database  {project.database} (schema up to date)")
    if project.dev_ca is not None:
        console.print(f"dev CA    {project.dev_ca.folder} [bold red]development only, not for production[/bold red]")
        console.print(f"          verify with: guardrail verify IMAGE --trust-anchors {project.dev_ca.trust_anchors}")
