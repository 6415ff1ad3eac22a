"""guardrail policy: validate, test, explain and replay policies, and print their JSON Schema."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from guardrail.cli.common import ConfigOption, DatabaseOption, resolve_database
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
    including reference sets the policy screens with but guardrail.yaml (when present) does not define,
    and concept rules without the embedding model they need.

    Example: guardrail policy validate policies/*.yaml --env prod
    """
    from guardrail.policy.load import load_policy, locate, read_text_file, read_yaml

    known, embedding = None, True
    if config.exists():
        from guardrail.config import load_config

        screening = load_config(config).screening
        known = set(screening.reference_sets)
        embedding = screening.embedding is not None and screening.embedding.has_weights
    problems: list[Problem] = []
    for file in files:
        try:
            policy = load_policy(file, environment=env)
        except PolicyError as exc:
            problems += exc.problems
            continue
        unknown = sorted(set(policy.screening.sets) - known) if known is not None else []
        found: list[tuple[list[str], str]] = [
            (
                ["screening", "sets", name],
                f"unknown reference set {name!r} (defined in {config}: {', '.join(sorted(known or [])) or 'none'})",
            )
            for name in unknown
        ]
        if policy.screening.concepts and not embedding:
            found.append(
                (
                    ["screening", "concepts"],
                    f"concept rules need an embedding model with a checkpoint (screening.embedding in {config})",
                )
            )
        if found:
            data = read_yaml(read_text_file(file), str(file))
            for path, message in found:
                line, column = locate(data, path)
                problems.append(Problem(message, str(file), line, column, ".".join(path)))
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
    as_json: JsonOption = False,
) -> None:
    """Evaluate one request against a policy without generating. Exits 1 when it is denied.

    Example: guardrail policy check policies/default.yaml --prompt "a watercolor fox" --param steps=80 --json
    """
    from guardrail.policy.engine import PolicyEngine
    from guardrail.policy.load import load_policy

    policy = load_policy(file, environment=env)
    decision = PolicyEngine(policy).evaluate(_request(prompt, negative, param, user, role, tenant, model, adapter))
    if as_json:
        emit_one({**decision.as_dict(), "policy": policy.name, "policy_version": policy.version}, as_json=True)
    else:
        colour = {"allow": "green", "modify": "yellow", "deny": "red"}[decision.effect]
        console.print(f"[{colour}]{decision.effect}[/{colour}]" + (" (flagged)" if decision.flagged else ""))
        for rule in decision.fired:
            console.print(f"  {rule.id} [{rule.effect}]: {rule.message} ({rule.detail})", markup=False)
        for change in decision.modifications:
            console.print(f"  modified {change.field}: {change.before!r} -> {change.after!r}", markup=False)
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
    as_json: JsonOption = False,
) -> None:
    """Show which rules fired and why: each prompt as the policy sees it after normalisation, the
    term or regex that matched, the rules in scope that did not fire, and what was modified.

    Example: guardrail policy explain policies/default.yaml --prompt "a ｇ0re scene"
    """
    from guardrail.policy.engine import PolicyEngine
    from guardrail.policy.load import load_policy
    from guardrail.policy.text import normalize

    policy = load_policy(file, environment=env)
    request = _request(prompt, negative, param, user, role, tenant, model, adapter)
    decision = PolicyEngine(policy).evaluate(request)
    fired = set(decision.rule_ids)
    quiet = [r.id for r in policy.rules if r.id not in fired and r.when.applies(request.user, request.roles)]
    skipped = [r.id for r in policy.rules if not r.when.applies(request.user, request.roles)]
    texts = [{"field": "prompt", "text": t, "normalised": normalize(t)} for t in request.prompts]
    texts += [{"field": "negative_prompt", "text": t, "normalised": normalize(t)} for t in request.negative_prompts]
    if as_json:
        result = {"policy": policy.name, "version": policy.version, "texts": texts, **decision.as_dict()}
        emit_one({**result, "not_fired": quiet, "out_of_scope": skipped}, as_json=True)
    else:
        console.print(f"policy [bold]{policy.name}[/bold] version {policy.version[:12]}", highlight=False)
        for item in texts:
            line = f"{item['field']}: {item['text']!r}\n  as the policy reads it: {item['normalised']!r}"
            console.print(line, markup=False)
        console.print(f"decision: [bold]{decision.effect}[/bold]" + (" (flagged)" if decision.flagged else ""))
        for rule in decision.fired:
            console.print(f"  fired {rule.id} [{rule.effect}]: {rule.message}\n    because {rule.detail}", markup=False)
        for change in decision.modifications:
            line = f"  modified {change.field}: {change.before!r} -> {change.after!r} (rule {change.rule_id})"
            console.print(line, markup=False)
        console.print(f"  in scope, did not fire: {', '.join(quiet) or 'none'}", markup=False)
        if skipped:
            console.print(f"  out of scope for this user and roles: {', '.join(skipped)}", markup=False)


@app.command("test")
def test_(
    path: Annotated[Path, typer.Argument(help="A *.test.yaml file or a folder of them.")] = Path("policies"),
    as_json: JsonOption = False,
) -> None:
    """Run policy test cases (request -> expected decision and rule ids) and print a pass/fail summary.
    Exits 1 when a case fails, 2 when a test file is unusable.

    Example: guardrail policy test policies/
    """
    from guardrail.policy.cases import find_case_files, run_case_file

    files = find_case_files(path)
    if not files:
        raise typer.BadParameter(f"no *.test.yaml files under {path}", param_hint="PATH")
    results = [result for file in files for result in run_case_file(file)]
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
    from guardrail.audit.store import AuditStore
    from guardrail.cli.common import parse_time
    from guardrail.policy.engine import PolicyEngine
    from guardrail.policy.load import load_policy
    from guardrail.policy.replay import replay as run_replay

    candidate = PolicyEngine(load_policy(file, environment=env))
    store = AuditStore(resolve_database(config, database), migrate="check")
    try:
        report = run_replay(
            store.engine, candidate, since=parse_time(since, "--since"), until=parse_time(until, "--until")
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
