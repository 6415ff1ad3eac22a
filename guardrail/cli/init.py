"""guardrail init: a working set-up in one folder (config, default policy, HMAC key, database)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated

import typer

from guardrail.cli.output import console


def init(
    directory: Annotated[Path, typer.Argument(help="Folder to set up.", file_okay=False)] = Path("."),
    database: Annotated[
        str | None, typer.Option("--database", "-d", help="Database URL instead of guardrail.db.")
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite guardrail.yaml and the policy (never the key).")
    ] = False,
) -> None:
    """Create guardrail.yaml, policies/default.yaml, a private HMAC key and the audit database. Writes files.

    Example: guardrail init ./governance
    """
    from guardrail._resources import data_dir
    from guardrail.audit.privacy import create_key_file
    from guardrail.audit.store import AuditStore, database_url, safe_url
    from guardrail.config import CONFIG_TEMPLATE

    directory.mkdir(parents=True, exist_ok=True)
    config_file = directory / "guardrail.yaml"
    policy_file = directory / "policies" / "default.yaml"
    key_file = directory / ".guardrail" / "hmac.key"
    for path in (config_file, policy_file):
        if path.exists() and not force:
            raise typer.BadParameter(f"{path} exists; pass --force to overwrite it", param_hint="DIRECTORY")
    config_text = CONFIG_TEMPLATE
    if database:
        config_text = config_text.replace("database: guardrail.db", f"database: {database}")
    config_file.write_text(config_text)
    policy_file.parent.mkdir(exist_ok=True)
    shutil.copyfile(data_dir("policies") / "default.yaml", policy_file)
    if key_file.exists():
        console.print(f"kept the existing key {key_file}")
    else:
        create_key_file(key_file)
        console.print(f"created {key_file} (owner-only; back it up, never commit it)")
    url = database_url(database or "guardrail.db", directory)
    AuditStore(url, migrate="auto").close()
    console.print(f"created {config_file}, {policy_file}; audit database {safe_url(url)} is ready")
