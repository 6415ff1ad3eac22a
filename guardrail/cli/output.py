"""One set of output options for every command that prints data: a Rich table (default), --json or --csv."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Sequence
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

console = Console()
errors = Console(stderr=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
CsvOption = Annotated[bool, typer.Option("--csv", help="Print CSV instead of a table.")]


def emit(
    rows: Sequence[dict[str, Any]], *, as_json: bool, as_csv: bool, columns: Sequence[str], title: str = ""
) -> None:
    """Print rows in the chosen format; JSON prints one object per line (JSON lines)."""
    if as_json and as_csv:
        raise typer.BadParameter("choose one of --json and --csv")
    if as_json:
        for row in rows:
            sys.stdout.write(json.dumps(row, default=str) + "\n")
    elif as_csv:
        writer = csv.DictWriter(sys.stdout, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _cell(row.get(k)) for k in columns})
    else:
        table = Table(title=title or None)
        for column in columns:
            table.add_column(column)
        for row in rows:
            table.add_row(*(_cell(row.get(c)) for c in columns))
        console.print(table)


def emit_line(data: dict[str, Any]) -> None:
    """Print one result of several as a JSON line (one object per line: `jq` and json.loads per line)."""
    sys.stdout.write(json.dumps(data, default=str, separators=(",", ":")) + "\n")


def emit_one(data: dict[str, Any], *, as_json: bool) -> None:
    """Print one record: pretty JSON, or a two-column table."""
    if as_json:
        sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
        return
    table = Table(show_header=False)
    table.add_column(style="bold")
    table.add_column()
    for key, value in data.items():
        table.add_row(key, _cell(value) if not isinstance(value, dict | list) else json.dumps(value, default=str))
    console.print(table)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    return str(value)
