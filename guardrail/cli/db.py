"""guardrail db: schema migrations of the audit database (Alembic)."""

from __future__ import annotations

from pathlib import Path

import typer

from guardrail.cli.common import ConfigOption, DatabaseOption, resolve_database
from guardrail.cli.output import console

app = typer.Typer(help="Manage the audit database schema.", no_args_is_help=True)


@app.command()
def upgrade(config: ConfigOption = Path("guardrail.yaml"), database: DatabaseOption = None) -> None:
    """Bring the audit database schema up to date (creates it if new). Writes the schema.

    Example: guardrail db upgrade --database postgresql+psycopg://guardrail@db/guardrail
    """
    from guardrail.audit import migrate
    from guardrail.audit.store import AuditStore, safe_url

    url = resolve_database(config, database)
    store = AuditStore(url, migrate="auto")
    console.print(f"{safe_url(url)} is at revision {migrate.current_revision(store.engine)} (head)")
    store.close()


@app.command()
def downgrade(
    revision: str = typer.Argument(help="Target revision, or 'base' to remove every guardrail table."),
    config: ConfigOption = Path("guardrail.yaml"),
    database: DatabaseOption = None,
) -> None:
    """Migrate the schema down to REVISION. Destroys the data of the removed tables.

    Example: guardrail db downgrade base --database test.db
    """
    from guardrail.audit import migrate
    from guardrail.audit.store import connect, safe_url

    url = resolve_database(config, database)
    engine, _current = connect(url)
    migrate.downgrade(engine, revision)
    console.print(f"{safe_url(url)} is at revision {migrate.current_revision(engine) or 'base'}")
    engine.dispose()


@app.command()
def current(config: ConfigOption = Path("guardrail.yaml"), database: DatabaseOption = None) -> None:
    """Print the schema revision of the audit database and the newest one guardrail knows.

    Example: guardrail db current
    """
    from guardrail.audit import migrate
    from guardrail.audit.store import connect

    engine, revision = connect(resolve_database(config, database))
    console.print(f"current: {revision or 'none'}  head: {migrate.head_revision()}")
    engine.dispose()
