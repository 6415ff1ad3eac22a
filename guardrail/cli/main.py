"""The `guardrail` command. Errors become messages and exit codes here, in one place:
0 ok, 1 denied or a failed check, 2 unusable input (usage, files, configuration, database)."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

import typer

from guardrail.cli import audit, classify, compliance, db, init, policy, refs, review, trace, verify
from guardrail.cli.output import errors
from guardrail.errors import GuardrailError, PolicyViolation

app = typer.Typer(
    name="guardrail",
    help="Governance and provenance for AI image generation: policies, audit log, C2PA verification.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command("init")(init.init)
app.command("verify")(verify.verify)
app.command("trace")(trace.trace)
app.command("classify")(classify.classify)
app.add_typer(policy.app, name="policy")
app.add_typer(audit.app, name="audit")
app.add_typer(db.app, name="db")
app.add_typer(refs.app, name="refs")
app.add_typer(compliance.app, name="compliance")
app.add_typer(review.app, name="review")


def main(argv: Sequence[str] | None = None) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        app(args=list(argv) if argv is not None else None, prog_name="guardrail")
    except PolicyViolation as exc:
        errors.print(f"[red]denied:[/red] {exc}", highlight=False)
        sys.exit(1)
    except GuardrailError as exc:
        errors.print(f"[red]error:[/red] {exc}", highlight=False, markup=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
