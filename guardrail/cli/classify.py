"""guardrail classify: content classifier scores of images, and what the policy would decide."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from guardrail.cli.common import ConfigOption
from guardrail.cli.output import JsonOption, console, emit_line


def classify(
    images: Annotated[list[Path], typer.Argument(help="Image files to classify.")],
    policy: Annotated[
        Path | None, typer.Option("--policy", "-p", help="Policy file (default: the config's policy).")
    ] = None,
    user: Annotated[str | None, typer.Option("--user", "-u", help="As a call by this user.")] = None,
    role: Annotated[list[str] | None, typer.Option("--role", "-r", help="A role of the user (repeatable).")] = None,
    config: ConfigOption = Path("guardrail.yaml"),
    as_json: JsonOption = False,
) -> None:
    """Run the content classifiers the policy's classifier rules name (for this user and roles) on
    each image, print every score and box, and what the rules would do with it as a call's output:
    block, review, blur, flag or allow. Exits 1 when an image would be blocked, 2 for a file that is
    no image. Reads only; the models load from local files.

    Example: guardrail classify out.png --role guest --json
    """
    from guardrail.classify.loader import ClassifierSet
    from guardrail.classify.rules import preview
    from guardrail.config import GuardConfig, load_config
    from guardrail.images import open_image, read_limited
    from guardrail.policy.load import load_policy

    settings = load_config(config) if config.exists() else GuardConfig()
    rules_file = policy if policy is not None else settings.path(settings.policy)
    loaded = load_policy(rules_file, environment=settings.environment)
    if not loaded.classifiers:
        raise typer.BadParameter(f"{rules_file} has no classifier rules", param_hint="--policy")
    decoded = []
    for path in images:
        try:
            decoded.append(open_image(read_limited(path), name=str(path)))
        except (OSError, ValueError) as exc:
            raise typer.BadParameter(str(exc), param_hint="IMAGES") from None
    results = preview(
        loaded, ClassifierSet(settings.classifiers, path=settings.path), decoded, user=user, roles=tuple(role or ())
    )
    for path, result in zip(images, results, strict=True):
        if as_json:
            emit_line({"image": str(path), **result})
            continue
        colour = {"block": "red", "review": "magenta", "blur": "yellow", "flag": "yellow"}.get(
            result["action"], "green"
        )
        console.print(f"[{colour}]{result['action']}[/{colour}] {path}", highlight=False)
        for model, found in result["scores"].items():
            for d in found["found"]:
                box = f" at {d['box']}" if "box" in d else ""
                console.print(f"  {model}: {d['label']} {d['score']:.3f}{box}", highlight=False)
            if not found["found"]:
                console.print(f"  {model}: nothing found", highlight=False)
        for rule in result["fired"]:
            console.print(f"  fires {rule['id']}: {rule['detail']}", markup=False, highlight=False)
    if any(result["action"] == "block" for result in results):
        raise typer.Exit(1)
