"""guardrail audit: list and inspect the calls in the audit log."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from guardrail.cli.common import ConfigOption, DatabaseOption, resolve_database
from guardrail.cli.output import CsvOption, JsonOption, emit, emit_one

app = typer.Typer(help="Query the audit log.", no_args_is_help=True)

_COLUMNS = ("call_id", "started_at", "user", "status", "decision", "rules", "model", "policy")


@app.command("list")
def list_(
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="How many calls, newest first.")] = 50,
    user: Annotated[str | None, typer.Option("--user", "-u", help="Only this user's calls.")] = None,
    status: Annotated[str | None, typer.Option("--status", help="pending, allowed, modified, denied or error.")] = None,
    config: ConfigOption = Path("guardrail.yaml"),
    database: DatabaseOption = None,
    as_json: JsonOption = False,
    as_csv: CsvOption = False,
) -> None:
    """List recent calls: who, when, the decision and the rules that fired. Reads only.

    Example: guardrail audit list --user alice --status denied --csv
    """
    from guardrail.audit.query import list_calls
    from guardrail.audit.store import AuditStore

    store = AuditStore(resolve_database(config, database), migrate="check")
    rows = [c.as_dict() for c in list_calls(store.engine, limit=limit, user=user, status=status)]
    store.close()
    emit(rows, as_json=as_json, as_csv=as_csv, columns=_COLUMNS, title="guardrail audit log")


@app.command()
def show(
    call_id: Annotated[str, typer.Argument(help="A call's audit id (a unique prefix is enough).")],
    config: ConfigOption = Path("guardrail.yaml"),
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show every event of one call: request, decision, parameters, outputs and timings. Reads only.

    Example: guardrail audit show 3f2a9c
    """
    from guardrail.audit.query import call_events
    from guardrail.audit.store import AuditStore

    store = AuditStore(resolve_database(config, database), migrate="check")
    try:
        events = call_events(store.engine, call_id)
    except LookupError as exc:
        raise typer.BadParameter(str(exc), param_hint="CALL_ID") from None
    finally:
        store.close()
    if not events:
        raise typer.BadParameter(f"no call with id {call_id!r}", param_hint="CALL_ID")
    for event in events:
        emit_one(event, as_json=as_json)
