"""Options shared by the commands that open the audit database."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

ConfigOption = Annotated[
    Path,
    typer.Option("--config", "-c", envvar="GUARDRAIL_CONFIG", help="guardrail.yaml to read the database from."),
]
DatabaseOption = Annotated[
    str | None,
    typer.Option(
        "--database", "-d", envvar="GUARDRAIL_DATABASE", help="Database URL or SQLite path (overrides --config)."
    ),
]


def resolve_database(config: Path, database: str | None) -> str:
    """The database URL: --database if given, else the one in the config file."""
    from guardrail.audit.store import database_url
    from guardrail.config import load_config

    if database:
        return database_url(database)
    if not config.exists():
        raise typer.BadParameter(
            f"{config} not found: pass --database, or run `guardrail init` first", param_hint="--config"
        )
    settings = load_config(config)
    return database_url(settings.database, settings.base_dir)
