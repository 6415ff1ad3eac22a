"""guardrail policy: validate, test, explain and replay policies, and print their JSON Schema."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from guardrail.cli.common import ConfigOption, DatabaseOption, configured_embedder, parse_time, resolve_database
from guardrail.cli.output import CsvOption, JsonOption, console, emit, emit_one
from guardrail.errors import PolicyError, Problem

app = typer.Typer(help="Write, test and try out policies.", no_args_is_help=True)

EnvOption = Annotated[str | None, typer.Option("--env", "-e", help="Apply this environment's overrides.")]
PolicyFile = Annotated[Path, typer.Argument(help="Policy YAML file.")]


@app.command()
def schema() -> None:
    """Print the JSON Schema of the policy format (for editors: yaml-language-server, VS Code).

    Example: guardrail policy schema > policy.schema.json
    """
    from guardrail.policy.schema import json_schema

    sys.stdout.write(json.dumps(json_schema(), indent=2) + "\n")


@app.command()
def validate(
    files: Annotated[list[Path], typer.Argument(help="Policy YAML files.")],
    env: EnvOption = None,
    config: Annotated[
        Path,
        typer.Option(
            "--config", "-c", envvar="GUARDRAIL_CONFIG", help="guardrail.yaml: its reference sets and embedding model."
        ),
    ] = Path("guardrail.yaml"),
) -> None:
    """Check policy files; every problem of every file is printed with file, line, column and field,
    including what the policy asks for that the Guard guardrail.yaml (when present) describes cannot do:
    unknown reference sets, concept rules without an embedding model, required signing without a
    signer, HMAC prompts without a key, a label font that cannot be read (the same check a Guard
    makes at start).

    Example: guardrail policy validate policies/*.yaml --env prod
    """
    from guardrail.config import Capabilities, file_gaps, load_config, policy_gaps
    from guardrail.policy.load import load_policy, locate, read_text_file, read_yaml

    offered = Capabilities.of(load_config(config)) if config.exists() else None
    problems: list[Problem] = []
    for file in files:
        try:
            policy = load_policy(file, environment=env)
        except PolicyError as exc:
            problems += exc.problems
            continue
        gaps = policy_gaps(policy, offered) if offered is not None else file_gaps(policy)
        if gaps:
            data = read_yaml(read_text_file(file), str(file))
            for path, message in gaps:
                line, column = locate(data, path)
                field = ".".join(str(part) for part in path)
                against = f" (checked against {config})" if offered is not None else ""
                problems.append(Problem(message + against, str(file), line, column, field))
            continue
        summary = f"policy {policy.name!r}, {len(policy.rules)} rules, version {policy.version[:12]}"
        console.print(f"[green]ok[/green] {file}: {summary}")
    if problems:
        raise PolicyError(problems)


def _request(
    prompt: list[str], negative: list[str] | None, param: list[str] | None, user: str | None,
    role: list[str] | None, tenant: str | None, model: str | None, adapter: list[str] | None,
) -> Any:  # fmt: skip
    from guardrail.policy.cases import RequestSpec, parse_params

    try:
        params = parse_params(param or [])
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--param") from None
    spec = RequestSpec(
        prompt=prompt, negative_prompt=negative or None, params=params, user=user, roles=role or [],
        tenant=tenant, model=model, adapters=adapter or [],
    )  # fmt: skip
    return spec.to_request()


@contextmanager
def _checks(config: Path, database: str | None, *, quotas: bool = True) -> Iterator[Any]:
    """The checks of the Guard that guardrail.yaml describes, for deciding as it would: its embedding
    model (concept rules) and, where an audit database exists, its quota counts, to read (decide with
    charge=False). Without a database, quotas are unchecked."""
    from guardrail.pipeline import Checks

    embedder, store = configured_embedder(config), None
    if quotas and (database or config.exists()):
        from guardrail.audit.store import AuditStore, database_exists

        url = resolve_database(config, database)
        if database_exists(url):
            store = AuditStore(url, migrate="check")
    try:
        ledger = None
        if store is not None:
            from guardrail.audit.quota import QuotaLedger

            ledger = QuotaLedger(store.engine)
        yield Checks(embedder=embedder, quotas=ledger)
    finally:
        if store is not None:
            store.close()


def _print_decision(decision: Any, unchecked: tuple[str, ...], *, verbose: bool) -> None:
    colour = {"allow": "green", "modify": "yellow", "deny": "red"}[decision.effect]
    head = "decision: " if verbose else ""
    console.print(f"{head}[{colour}]{decision.effect}[/{colour}]" + (" (flagged)" if decision.flagged else ""))
    for rule in decision.fired:
        if verbose:
            console.print(f"  fired {rule.id} [{rule.effect}]: {rule.message}\n    because {rule.detail}", markup=False)
        else:
            console.print(f"  {rule.id} [{rule.effect}]: {rule.message} ({rule.detail})", markup=False)
    for change in decision.modifications:
        rule = f" (rule {change.rule_id})" if verbose else ""
        console.print(f"  modified {change.field}: {change.before!r} -> {change.after!r}{rule}", markup=False)
    for left, count in decision.quotas.items():
        console.print(f"  quota {left}: {count} images left", markup=False)
    if "quotas" in unchecked:
        console.print("  quotas: not checked (no audit database: pass --database or --config)", markup=False)


Prompt = Annotated[list[str], typer.Option("--prompt", "-p", help="Prompt text (repeat for a batch).")]
Negative = Annotated[list[str] | None, typer.Option("--negative", "-n", help="Negative prompt.")]
Param = Annotated[list[str] | None, typer.Option("--param", help="Generation parameter, key=value (steps=30).")]
User = Annotated[str | None, typer.Option("--user", "-u", help="Who makes the request.")]
Role = Annotated[list[str] | None, typer.Option("--role", "-r", help="A role of the user (repeatable).")]
Tenant = Annotated[str | None, typer.Option("--tenant", help="The user's tenant.")]
Model = Annotated[str | None, typer.Option("--model", help="Model name or path.")]
Adapter = Annotated[list[str] | None, typer.Option("--adapter", help="Loaded adapter (LoRA) name.")]


@app.command()
def check(
    file: PolicyFile,
    prompt: Prompt,
    negative: Negative = None,
    param: Param = None,
    user: User = None,
    role: Role = None,
    tenant: Tenant = None,
    model: Model = None,
    adapter: Adapter = None,
    env: EnvOption = None,
    config: ConfigOption = Path("guardrail.yaml"),
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Decide one request as a Guard would (rules, concept rules with the configured embedding model,
    quotas read from the audit database but never charged), without generating. Exits 1 when denied.

    Example: guardrail policy check policies/default.yaml --prompt "a watercolor fox" --param steps=80 --json
    """
    from guardrail.policy.engine import PolicyEngine
    from guardrail.policy.load import load_policy

    engine = PolicyEngine(load_policy(file, environment=env))
    request = _request(prompt, negative, param, user, role, tenant, model, adapter)
    from guardrail.pipeline import Evidence, decide

    with _checks(config, database) as checks:
        verdict = decide(engine, request, Evidence(request, checks), charge=False)
    decision = verdict.decision
    if as_json:
        result = {**decision.as_dict(), "policy": engine.policy.name, "policy_version": engine.version}
        emit_one({**result, "unchecked": list(verdict.unchecked)}, as_json=True)
    else:
        _print_decision(decision, verdict.unchecked, verbose=False)
    if not decision.allowed:
        raise typer.Exit(1)


@app.command()
def explain(
    file: PolicyFile,
    prompt: Prompt,
    negative: Negative = None,
    param: Param = None,
    user: User = None,
    role: Role = None,
    tenant: Tenant = None,
    model: Model = None,
    adapter: Adapter = None,
    env: EnvOption = None,
    config: ConfigOption = Path("guardrail.yaml"),
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show which rules fired and why: each prompt as the policy sees it after normalisation (folded
    letter forms, leetspeak, spacing), the term or regex that matched, matches an exception phrase
    suppressed (and which phrase), the rules in scope that did not fire, and what was modified.

    Example: guardrail policy explain policies/default.yaml --prompt "a ｇ0re scene"
    """
    from guardrail.policy.engine import PolicyEngine
    from guardrail.policy.load import load_policy
    from guardrail.policy.text import normalize

    engine = PolicyEngine(load_policy(file, environment=env))
    policy = engine.policy
    request = _request(prompt, negative, param, user, role, tenant, model, adapter)
    from guardrail.pipeline import Evidence, decide

    with _checks(config, database) as checks:
        verdict = decide(engine, request, Evidence(request, checks), charge=False)
    decision = verdict.decision
    fired = set(decision.rule_ids)
    quiet = [r.id for r in policy.rules if r.id not in fired and r.when.applies(request.user, request.roles)]
    quiet += [r.id for r in policy.screening.concepts if r.id not in fired]
    skipped = [r.id for r in policy.rules if not r.when.applies(request.user, request.roles)]
    texts = [{"field": "prompt", "text": t, "normalised": normalize(t)} for t in request.prompts]
    texts += [{"field": "negative_prompt", "text": t, "normalised": normalize(t)} for t in request.negative_prompts]
    if as_json:
        result = {"policy": policy.name, "version": policy.version, "texts": texts, **decision.as_dict()}
        emit_one(
            {**result, "not_fired": quiet, "out_of_scope": skipped, "unchecked": list(verdict.unchecked)},
            as_json=True,
        )
    else:
        console.print(f"policy [bold]{policy.name}[/bold] version {policy.version[:12]}", highlight=False)
        for item in texts:
            line = f"{item['field']}: {item['text']!r}\n  as the policy reads it: {item['normalised']!r}"
            console.print(line, markup=False)
        _print_decision(decision, verdict.unchecked, verbose=True)
        for rule in decision.suppressed:
            console.print(f"  suppressed {rule.id}: {rule.detail}", markup=False)
        console.print(f"  in scope, did not fire: {', '.join(quiet) or 'none'}", markup=False)
        if skipped:
            console.print(f"  out of scope for this user and roles: {', '.join(skipped)}", markup=False)


@app.command("test")
def test_(
    path: Annotated[Path, typer.Argument(help="A *.test.yaml file or a folder of them.")] = Path("policies"),
    config: ConfigOption = Path("guardrail.yaml"),
    as_json: JsonOption = False,
) -> None:
    """Run policy test cases (request -> expected decision and rule ids) and print a pass/fail summary.
    Cases are decided as a Guard decides (concept rules with guardrail.yaml's embedding model); quotas
    are not consulted. Exits 1 when a case fails, 2 when a test file is unusable.

    Example: guardrail policy test policies/
    """
    from guardrail.policy.cases import find_case_files, run_case_file

    files = find_case_files(path)
    if not files:
        raise typer.BadParameter(f"no *.test.yaml files under {path}", param_hint="PATH")
    from guardrail.pipeline import decider

    with _checks(config, None, quotas=False) as checks:
        decide = decider(checks)
        results = [result for file in files for result in run_case_file(file, decide)]
    failed = [r for r in results if not r.passed]
    if as_json:
        for r in results:
            sys.stdout.write(
                json.dumps(
                    {"file": r.file, "line": r.line, "case": r.name, "passed": r.passed, "problems": list(r.problems)}
                )
                + "\n"
            )
    else:
        for r in results:
            mark = "[green]PASS[/green]" if r.passed else "[red]FAIL[/red]"
            console.print(f"{mark} {r.file}:{r.line}: {r.name}", highlight=False)
            for problem in r.problems:
                console.print(f"     {problem}", highlight=False, markup=False)
        console.print(f"{len(results) - len(failed)} passed, {len(failed)} failed", highlight=False)
    if failed:
        raise typer.Exit(1)


@app.command()
def replay(
    file: PolicyFile,
    since: Annotated[str | None, typer.Option("--since", help="ISO time, or an age such as 7d or 12h.")] = None,
    until: Annotated[str | None, typer.Option("--until", help="ISO time, or an age such as 1h.")] = None,
    env: EnvOption = None,
    config: ConfigOption = Path("guardrail.yaml"),
    database: DatabaseOption = None,
    as_json: JsonOption = False,
    as_csv: CsvOption = False,
) -> None:
    """Re-evaluate logged requests with a candidate policy and report what would change. Requests
    whose prompts were not kept in plaintext cannot be replayed and are counted. Reads only.

    Example: guardrail policy replay policies/candidate.yaml --since 7d --config guardrail.yaml
    """
    from guardrail.audit.query import logged_requests
    from guardrail.audit.store import AuditStore
    from guardrail.pipeline import decider
    from guardrail.policy.engine import PolicyEngine
    from guardrail.policy.load import load_policy
    from guardrail.policy.replay import replay as run_replay

    candidate = PolicyEngine(load_policy(file, environment=env))
    start, end = parse_time(since, "--since"), parse_time(until, "--until")
    store = AuditStore(resolve_database(config, database), migrate="check")
    try:
        with _checks(config, None, quotas=False) as checks:
            decide = decider(checks)
            report = run_replay(
                logged_requests(store.engine, start, end),
                lambda request: decide(candidate, request),
                quota_ids={quota.id for quota in candidate.policy.quotas},
            )
    finally:
        store.close()
    rows = [c.as_dict() for c in report.changes]
    columns = ("call_id", "user", "logged", "logged_rules", "candidate", "candidate_rules")
    if as_json or as_csv:
        emit(rows, as_json=as_json, as_csv=as_csv, columns=columns)
        return
    emit(rows, as_json=False, as_csv=False, columns=columns, title=f"changes under {candidate.policy.name}")
    summary = report.as_dict()
    console.print(
        f"replayed {summary['replayed']}: {summary['unchanged']} unchanged, {summary['changed']} changed; "
        f"{summary['not_replayable']} not replayable (prompts not kept in plaintext, or decided by a quota)"
    )
