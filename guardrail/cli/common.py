"""Options shared by the commands that open the audit database."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Annotated, Any

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


TrustAnchorsOption = Annotated[
    Path | None,
    typer.Option(
        "--trust-anchors", "-t", help="PEM of trusted roots (default: the config's provenance.trust_anchors)."
    ),
]


def configured_embedder(config: Path) -> Any:
    """The embedding model guardrail.yaml configures, if any (None: no file, or no model in it)."""
    from guardrail.config import load_config
    from guardrail.screening.embeddings import embedder_from_config

    if not config.exists():
        return None
    settings = load_config(config)
    return embedder_from_config(settings.screening.embedding, settings.path)


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


def trust_anchors(option: Path | None, config: Path | None) -> str | None:
    """The PEM of trusted roots: --trust-anchors, else guardrail.yaml's provenance.trust_anchors, else none."""
    if option is not None:
        if not option.is_file():
            raise typer.BadParameter(f"{option} not found", param_hint="--trust-anchors")
        return option.read_text(encoding="utf-8")
    if config is None or not config.exists():
        return None
    from guardrail.config import load_config

    return load_config(config).trust_anchors_pem()


def parse_time(value: str | None, option: str) -> datetime | None:
    """An ISO 8601 time (UTC when it names no zone) or an age before now: 30m, 12h, 7d."""
    if value is None:
        return None
    from guardrail.audit.query import MAX_AGE_DAYS

    match = re.fullmatch(r"(\d{1,12})([smhd])", value)
    if match:
        seconds = int(match.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]
        if seconds > MAX_AGE_DAYS * 86400:
            raise typer.BadParameter(f"{value!r} reaches back more than {MAX_AGE_DAYS} days", param_hint=option)
        return datetime.now(timezone.utc) - timedelta(seconds=seconds)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is neither an ISO time nor an age like 7d", param_hint=option) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
