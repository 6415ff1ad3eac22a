"""guardrail policy: validate policy files and evaluate requests against them without generating."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from guardrail.cli.output import JsonOption, console, emit_one
from guardrail.errors import PolicyError, Problem

app = typer.Typer(help="Validate and try out policies.", no_args_is_help=True)

# --param keys -> GenerationRequest fields (diffusers' argument names are accepted too).
_PARAMS: dict[str, tuple[str, type]] = {
    "width": ("width", int),
    "height": ("height", int),
    "steps": ("steps", int),
    "num_inference_steps": ("steps", int),
    "guidance": ("guidance", float),
    "guidance_scale": ("guidance", float),
    "images": ("images_per_prompt", int),
    "images_per_prompt": ("images_per_prompt", int),
    "num_images_per_prompt": ("images_per_prompt", int),
}


@app.command()
def validate(files: Annotated[list[Path], typer.Argument(help="Policy YAML files.")]) -> None:
    """Check policy files; every problem is printed with file, line, column and field.

    Example: guardrail policy validate policies/default.yaml
    """
    from guardrail.policy.load import load_policy

    problems: list[Problem] = []
    for file in files:
        try:
            policy = load_policy(file)
        except PolicyError as exc:
            problems += exc.problems
            continue
        summary = f"policy {policy.name!r}, {len(policy.rules)} rules, version {policy.version[:12]}"
        console.print(f"[green]ok[/green] {file}: {summary}")
    if problems:
        raise PolicyError(problems)


def _parse_params(pairs: list[str]) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or key not in _PARAMS:
            known = ", ".join(sorted(_PARAMS))
            raise typer.BadParameter(f"{pair!r}: expected key=value with key one of {known}", param_hint="--param")
        field, kind = _PARAMS[key]
        try:
            fields[field] = kind(value)
        except ValueError:
            raise typer.BadParameter(f"{pair!r}: {key} must be a {kind.__name__}", param_hint="--param") from None
    return fields


@app.command()
def check(
    file: Annotated[Path, typer.Argument(help="Policy YAML file.")],
    prompt: Annotated[list[str], typer.Option("--prompt", "-p", help="Prompt text (repeat for a batch).")],
    negative: Annotated[list[str] | None, typer.Option("--negative", "-n", help="Negative prompt.")] = None,
    param: Annotated[list[str] | None, typer.Option("--param", help="Generation parameter, key=value.")] = None,
    user: Annotated[str | None, typer.Option("--user", "-u", help="Who makes the request.")] = None,
    role: Annotated[list[str] | None, typer.Option("--role", "-r", help="A role of the user (repeatable).")] = None,
    model: Annotated[str | None, typer.Option("--model", help="Model name or path.")] = None,
    adapter: Annotated[list[str] | None, typer.Option("--adapter", help="Loaded adapter (LoRA) name.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Evaluate one request against a policy without generating. Exits 1 when it is denied.

    Example: guardrail policy check policies/default.yaml --prompt "a watercolor fox" --param steps=80 --json
    """
    from guardrail.policy.engine import PolicyEngine
    from guardrail.policy.load import load_policy
    from guardrail.request import GenerationRequest, ModelIdentity

    policy = load_policy(file)
    request = GenerationRequest(
        prompts=tuple(prompt),
        negative_prompts=tuple(negative or ()),
        model=ModelIdentity(pipeline_class="cli", name_or_path=model, adapters=tuple(adapter or ())),
        user=user,
        roles=tuple(role or ()),
        **_parse_params(param or []),
    )
    decision = PolicyEngine(policy).evaluate(request)
    result = {**decision.as_dict(), "policy": policy.name, "policy_version": policy.version}
    if as_json:
        emit_one(result, as_json=True)
    else:
        colour = {"allow": "green", "modify": "yellow", "deny": "red"}[decision.effect]
        console.print(f"[{colour}]{decision.effect}[/{colour}]" + (" (flagged)" if decision.flagged else ""))
        for rule in decision.fired:
            console.print(f"  {rule.id} [{rule.effect}]: {rule.message} ({rule.detail})")
        for change in decision.modifications:
            console.print(f"  modified {change.field}: {change.before!r} -> {change.after!r}")
    if not decision.allowed:
        raise typer.Exit(1)
