"""guardrail audit: query, inspect, verify, export and erase the audit log."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from guardrail.cli.common import ConfigOption, DatabaseOption, parse_time, resolve_database
from guardrail.cli.output import CsvOption, JsonOption, console, emit, emit_one

app = typer.Typer(help="Query, verify, export and erase the audit log.", no_args_is_help=True)

_COLUMNS = ("call_id", "started_at", "user", "status", "decision", "rules", "model", "policy")

Since = Annotated[str | None, typer.Option("--since", help="ISO time, or an age such as 7d or 12h.")]
Until = Annotated[str | None, typer.Option("--until", help="ISO time, or an age such as 1h.")]
User = Annotated[str | None, typer.Option("--user", "-u", help="Only this user's calls.")]
Role = Annotated[str | None, typer.Option("--role", help="Only calls made with this role.")]
Status = Annotated[str | None, typer.Option("--status", help="pending, allowed, modified, denied or error.")]
DecisionOption = Annotated[str | None, typer.Option("--decision", help="allow, modify or deny.")]
Rule = Annotated[str | None, typer.Option("--rule", help="Only calls where this rule (or quota) fired.")]
Model = Annotated[str | None, typer.Option("--model", help="Model name; * is a wildcard.")]
RefSet = Annotated[str | None, typer.Option("--refset", help="Only calls that matched this reference set.")]
PolicyVersion = Annotated[str | None, typer.Option("--policy-version", help="A policy version or its prefix.")]
Text = Annotated[str | None, typer.Option("--text", help="Search prompts logged in plaintext.")]
Limit = Annotated[int, typer.Option("--limit", "-n", min=1, help="How many calls, newest first.")]


@contextmanager
def _store(config: Path, database: str | None) -> Iterator[Any]:
    from guardrail.audit.store import AuditStore

    store = AuditStore(resolve_database(config, database), migrate="check")
    try:
        yield store
    finally:
        store.engine.dispose()


def _filter(**values: Any) -> Any:
    from guardrail.audit.query import CallFilter

    for option in ("since", "until"):
        values[option] = parse_time(values[option], f"--{option}")
    return CallFilter(**values)


@app.command("query")
def query(
    since: Since = None,
    until: Until = None,
    user: User = None,
    role: Role = None,
    status: Status = None,
    decision: DecisionOption = None,
    rule: Rule = None,
    refset: RefSet = None,
    model: Model = None,
    policy_version: PolicyVersion = None,
    text: Text = None,
    limit: Limit = 100,
    config: ConfigOption = Path("guardrail.yaml"),
    database: DatabaseOption = None,
    as_json: JsonOption = False,
    as_csv: CsvOption = False,
) -> None:
    """Find calls by time, user, role, decision, rule, model, policy version or prompt text. Reads only.

    Example: guardrail audit query --since 7d --decision deny --rule no-graphic-violence --csv
    """
    from guardrail.audit.query import query_calls

    where = _filter(
        since=since, until=until, user=user, role=role, status=status, decision=decision, rule=rule,
        reference_set=refset, model=model, policy_version=policy_version, text=text, limit=limit,
    )  # fmt: skip
    with _store(config, database) as store:
        rows = [c.as_dict() for c in query_calls(store.engine, where)]
    emit(rows, as_json=as_json, as_csv=as_csv, columns=_COLUMNS, title="guardrail audit log")


@app.command("list")
def list_(
    limit: Limit = 50,
    user: User = None,
    status: Status = None,
    config: ConfigOption = Path("guardrail.yaml"),
    database: DatabaseOption = None,
    as_json: JsonOption = False,
    as_csv: CsvOption = False,
) -> None:
    """List the most recent calls: who, when, the decision and the rules that fired. Reads only.

    Example: guardrail audit list --user alice --status denied
    """
    from guardrail.audit.query import list_calls

    with _store(config, database) as store:
        rows = [c.as_dict() for c in list_calls(store.engine, limit=limit, user=user, status=status)]
    emit(rows, as_json=as_json, as_csv=as_csv, columns=_COLUMNS, title="guardrail audit log")


@app.command()
def show(
    call_id: Annotated[str, typer.Argument(help="A call's audit id (a unique prefix is enough).")],
    config: ConfigOption = Path("guardrail.yaml"),
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show every event of one call: request, decision, parameters, outputs, manifest and timings. Reads only.

    Example: guardrail audit show 3f2a9c
    """
    from guardrail.audit.query import call_events

    with _store(config, database) as store:
        try:
            events = call_events(store.engine, call_id)
        except LookupError as exc:
            raise typer.BadParameter(str(exc), param_hint="CALL_ID") from None
    if not events:
        raise typer.BadParameter(f"no call with id {call_id!r}", param_hint="CALL_ID")
    for event in events:
        emit_one(event, as_json=as_json)


@app.command()
def stats(
    since: Since = None,
    until: Until = None,
    user: User = None,
    config: ConfigOption = Path("guardrail.yaml"),
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Count calls by status, fired rule, user and day. Reads only.

    Example: guardrail audit stats --since 30d --json
    """
    from guardrail.audit.query import stats as count

    where = _filter(since=since, until=until, user=user, limit=None)
    with _store(config, database) as store:
        result = count(store.engine, where)
    if as_json:
        emit_one(result.as_dict(), as_json=True)
        return
    console.print(f"{result.calls} calls")
    for title, counts in (
        ("status", result.by_status),
        ("rule", result.by_rule),
        ("user", result.by_user),
        ("day", result.by_day),
    ):
        emit(
            [{title: k, "calls": v} for k, v in counts.items()],
            as_json=False,
            as_csv=False,
            columns=(title, "calls"),
            title=f"by {title}",
        )


def _public_key(config: Path, public_key: Path | None) -> bytes | None:
    if public_key is not None:
        if not public_key.is_file():
            raise typer.BadParameter(f"{public_key} not found", param_hint="--public-key")
        return public_key.read_bytes()
    if config.exists():
        from guardrail.config import load_config

        settings = load_config(config)
        if settings.audit.checkpoint_key_file:
            pub = settings.path(settings.audit.checkpoint_key_file).with_suffix(".pub")
            return pub.read_bytes() if pub.is_file() else None
    return None


@app.command()
def verify(
    checkpoints: Annotated[
        Path | None, typer.Option("--checkpoints", help="Exported checkpoints (JSON lines) kept outside the database.")
    ] = None,
    public_key: Annotated[
        Path | None, typer.Option("--public-key", help="Checkpoint public key (default: the config's key .pub).")
    ] = None,
    config: ConfigOption = Path("guardrail.yaml"),
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Prove the log was not altered: recompute the hash chain and check the signed checkpoints.
    Prints ranges as VALID, REDACTED, MISMATCH, GAP or TRUNCATED; exits 1 on any failure. Reads only.

    Example: guardrail audit verify --checkpoints /secure/guardrail-checkpoints.jsonl
    """
    from guardrail.audit.checkpoints import read_checkpoint_file
    from guardrail.audit.verify import verify_log
    from guardrail.config import AuditConfig, load_config

    given = None
    if checkpoints is not None:
        if not checkpoints.is_file():
            raise typer.BadParameter(f"{checkpoints} not found", param_hint="--checkpoints")
        given = read_checkpoint_file(checkpoints)
    key = _public_key(config, public_key)
    interval = None
    if key is not None:  # a key in use means checkpoints are written: none at all is a signal
        interval = (
            load_config(config).audit.checkpoint_interval_s if config.exists() else AuditConfig().checkpoint_interval_s
        )
    with _store(config, database) as store:
        report = verify_log(store.engine, public_key=key, checkpoints=given, checkpoint_interval_s=interval)
    if as_json:
        emit_one(report.as_dict(), as_json=True)
    else:
        colours = {"VALID": "green", "REDACTED": "cyan"}
        for r in report.ranges:
            colour = colours.get(r.status, "red")
            reason = f"  {r.reason}" if r.reason else ""
            console.print(f"[{colour}]{r.status:<9}[/{colour}] events {r.start}-{r.end}{reason}", highlight=False)
        for problem in report.checkpoint_problems:
            console.print(f"[red]CHECKPOINT[/red] {problem}", highlight=False)
        verdict = "[green]verified[/green]" if report.ok else "[red]FAILED[/red]"
        if key is None:
            marks = f"{report.checkpoints} checkpoints not checked (no public key)"
        else:
            marks = f"{report.checkpoints_verified} of {report.checkpoints} checkpoints verified"
        console.print(f"{verdict}: {report.events} events checked; {marks}", highlight=False)
    if not report.ok:
        raise typer.Exit(1)


@app.command("checkpoints")
def export_checkpoints(
    output: Annotated[
        Path, typer.Argument(help="File to write (JSON lines); keep it where the database's admins cannot write.")
    ],
    config: ConfigOption = Path("guardrail.yaml"),
    database: DatabaseOption = None,
) -> None:
    """Export the signed checkpoints, to keep outside the database. Writes OUTPUT.

    Example: guardrail audit checkpoints /secure/guardrail-checkpoints.jsonl
    """
    from guardrail.audit.query import checkpoints

    with _store(config, database) as store:
        rows = checkpoints(store.engine)
    output.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    console.print(f"wrote {len(rows)} checkpoints to {output}")


@app.command()
def export(
    output: Annotated[Path, typer.Argument(help="Folder for the evidence package.", file_okay=False)],
    since: Since = None,
    until: Until = None,
    public_key: Annotated[Path | None, typer.Option("--public-key", help="Checkpoint public key.")] = None,
    config: ConfigOption = Path("guardrail.yaml"),
    database: DatabaseOption = None,
) -> None:
    """Write an evidence package: the events (JSON lines), the checkpoints, the public key, a
    verification report of the whole log and the report page of the period (report.html). Writes
    files in OUTPUT.

    Example: guardrail audit export evidence-2026-q4 --since 2026-10-01 --until 2027-01-01
    """
    from guardrail.audit.query import checkpoints, events_between
    from guardrail.audit.verify import verify_log

    output.mkdir(parents=True, exist_ok=True)
    key = _public_key(config, public_key)
    start, end = parse_time(since, "--since"), parse_time(until, "--until")
    with _store(config, database) as store:
        count = 0
        with (output / "events.jsonl").open("w", encoding="utf-8") as handle:
            for event in events_between(store.engine, start, end):
                handle.write(json.dumps(event, default=str) + "\n")
                count += 1
        rows = checkpoints(store.engine)
        report = verify_log(store.engine, public_key=key)
        page = _report_page(store.engine, start, end, None, False, key, report.as_dict())
    (output / "report.html").write_text(page, encoding="utf-8")
    (output / "checkpoints.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    summary = {"since": since, "until": until, "events_exported": count, "verification": report.as_dict()}
    (output / "verification.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    if key is not None:
        (output / "checkpoint-public-key.pem").write_bytes(key)
    console.print(f"wrote {count} events, {len(rows)} checkpoints, the verification and report.html to {output}")
    if not report.ok:
        console.print("[red]the log did not verify; see verification.json[/red]")
        raise typer.Exit(1)


@app.command()
def report(
    out: Annotated[Path, typer.Option("--out", "-o", help="The HTML file to write.")] = Path("report.html"),
    since: Since = None,
    until: Until = None,
    user: User = None,
    verify: Annotated[
        bool, typer.Option("--verify/--no-verify", help="Verify the whole log for the page (default).")
    ] = True,
    public_key: Annotated[Path | None, typer.Option("--public-key", help="Checkpoint public key.")] = None,
    config: ConfigOption = Path("guardrail.yaml"),
    database: DatabaseOption = None,
) -> None:
    """Write the compliance report page of a period: totals and rates, calls and denials over time,
    denials and flags by rule, user, model, adapter and policy version, screening matches, classifier
    detections, quota exhaustion, policy changes, the log's verification and checkpoints, and the most
    recent denied calls. One self-contained HTML file: charts as inline SVG, no script, no request when
    opened; prints to PDF. Needs the report extra (matplotlib). Writes OUT.

    Example: guardrail audit report --since 7d --out report.html
    """
    key = _public_key(config, public_key)
    start, end = parse_time(since, "--since"), parse_time(until, "--until")
    with _store(config, database) as store:
        page = _report_page(store.engine, start, end, user, verify, key)
    out.write_text(page, encoding="utf-8")
    console.print(f"wrote {out} ({len(page.encode()) / 1024:.0f} KB)")


def _report_page(
    engine: Any,
    since: Any,
    until: Any,
    user: str | None,
    verify: bool,
    key: bytes | None,
    verification: dict[str, Any] | None = None,
) -> str:
    try:
        import matplotlib  # noqa: F401
    except ModuleNotFoundError:
        raise typer.BadParameter("the report page needs matplotlib: pip install 'guardrail[report]'") from None
    from guardrail.report.page import report_page

    return report_page(
        engine, since=since, until=until, user=user, verify=verify, public_key=key, verification=verification
    )


@app.command()
def erase(
    user: Annotated[str | None, typer.Option("--user", "-u", help="Erase this user's personal data.")] = None,
    call: Annotated[str | None, typer.Option("--call", help="Erase one call's personal data.")] = None,
    reason: Annotated[str, typer.Option("--reason", help="Why (recorded in the erasure event).")] = "",
    config: ConfigOption = Path("guardrail.yaml"),
    database: DatabaseOption = None,
) -> None:
    """Erase personal data (user, prompts, parameters, inputs) and append an erasure event; the
    hashes stay, so the chain still verifies. A user's images held for review (guardrail.yaml's
    review.folder) are deleted too. Writes the database.

    Example: guardrail audit erase --user alice --reason "GDPR request 2026-114"
    """
    from guardrail.audit.erase import erase as run_erase
    from guardrail.config import GuardConfig, load_config
    from guardrail.review.queue import ReviewQueue

    if (user is None) == (call is None):
        raise typer.BadParameter("give exactly one of --user and --call")
    with _store(config, database) as store:
        held = 0
        if user is not None:  # first: each rejection names the user's calls while they still do
            settings = load_config(config) if config.exists() else GuardConfig()
            held = ReviewQueue(store, settings.path(settings.review.folder)).forget_user(user)
        count = run_erase(store, user=user, call_id=call, reason=reason)
    console.print(f"erased the personal data of {count} events" + (f" and {held} held for review" if held else ""))


@app.command()
def purge(
    days: Annotated[float | None, typer.Option("--days", help="Age in days (default: audit.retention_days).")] = None,
    config: ConfigOption = Path("guardrail.yaml"),
    database: DatabaseOption = None,
) -> None:
    """Apply retention: erase personal data older than N days, keeping hashes. Writes the database.

    Example: guardrail audit purge --days 180
    """
    from guardrail.audit.erase import erase as run_erase

    if days is None and config.exists():
        from guardrail.config import load_config

        days = load_config(config).audit.retention_days
    if days is None:
        raise typer.BadParameter("give --days, or set audit.retention_days in guardrail.yaml", param_hint="--days")
    with _store(config, database) as store:
        count = run_erase(store, older_than_days=days, reason=f"retention: older than {days} days")
    console.print(f"erased the personal data of {count} events older than {days} days")
