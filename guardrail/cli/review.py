"""guardrail review: the calls held for review, and the people who approve or reject them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from guardrail.cli.common import ConfigOption, DatabaseOption
from guardrail.cli.output import JsonOption, console, emit, emit_line, emit_one

if TYPE_CHECKING:
    from guardrail.review.queue import ReviewItem, ReviewQueue

app = typer.Typer(
    help="Calls held for review (a rule or screening set with `review`): list, show, approve, reject, fetch.",
    no_args_is_help=True,
)

AuditId = Annotated[str, typer.Argument(help="The call's audit id (8 or more characters of it).")]
Reviewer = Annotated[str, typer.Option("--reviewer", "-r", help="Who decides (recorded in the audit log).")]


@contextmanager
def _queue(config: Path, database: str | None) -> Iterator[ReviewQueue]:
    """The queue guardrail.yaml describes; items held past review.expire_after are rejected first."""
    from guardrail.config import GuardConfig, load_config
    from guardrail.review.queue import ReviewQueue

    if not config.exists() and database is None:
        raise typer.BadParameter(f"{config} not found: pass --database, or run `guardrail init` first")
    settings = load_config(config) if config.exists() else GuardConfig()
    with ReviewQueue.from_config(settings, database) as queue:
        for audit_id in queue.expire():
            console.print(f"expired: call {audit_id} was held past review.expire_after; its images are deleted")
        yield queue


def _row(item: ReviewItem) -> dict[str, Any]:
    return {
        "audit_id": item.audit_id,
        "status": item.status,
        "requested_by": item.requested_by,
        "held_at": item.held_at.isoformat(timespec="seconds"),
        "rules": ", ".join(dict.fromkeys(rule["id"] for rule in item.rules if rule["effect"] == "review")),
        "approvals": f"{len(item.approvals)}/{item.approvals_needed}",
        "images": len(item.images),
    }


@app.command("list")
def list_(
    status: Annotated[
        str | None, typer.Option("--status", "-s", help="pending, approved or rejected (default: all).")
    ] = None,
    config: ConfigOption = Path("guardrail.yaml"),
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """List the calls held for review, oldest first. Expires those held past review.expire_after.

    Example: guardrail review list --status pending
    """
    with _queue(config, database) as queue:
        items = queue.items(status)
    if as_json:
        for item in items:
            emit_line(item.as_dict())
        return
    columns = ("audit_id", "status", "requested_by", "held_at", "rules", "approvals", "images")
    emit([_row(item) for item in items], as_json=False, as_csv=False, columns=columns, title="review queue")


@app.command()
def show(
    audit_id: AuditId,
    evidence: Annotated[
        Path | None,
        typer.Option("--evidence", help="Write the held images, and each beside the reference it matched, here."),
    ] = None,
    config: ConfigOption = Path("guardrail.yaml"),
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """One held call: what sent it to review (rules, screening matches with their references and
    scores), the prompts as the privacy mode stored them, the approvals so far. With --evidence, the
    held images and pictures of each match with the agreeing keypoints drawn.

    Example: guardrail review show 3f2a9c1e --evidence review-3f2a
    """
    with _queue(config, database) as queue:
        item = queue.item(audit_id)
        written = _write_evidence(queue, item, evidence, config) if evidence is not None else []
    data = {**item.as_dict(), **({"evidence": [str(p) for p in written]} if evidence is not None else {})}
    emit_one(data, as_json=as_json)


@app.command()
def approve(
    audit_id: AuditId,
    reviewer: Reviewer,
    note: Annotated[str, typer.Option("--note", "-n", help="Why (recorded in the audit log).")] = "",
    config: ConfigOption = Path("guardrail.yaml"),
    database: DatabaseOption = None,
) -> None:
    """Approve a held call. The approval that makes the count the policy asks for (review.approvals)
    releases the images, signed with the review recorded. The user who made the call cannot approve it
    (unless review.self_approval); of two reviewers acting at once, one wins. Writes the audit log.

    Example: guardrail review approve 3f2a9c1e --reviewer bob --note "a cup, not the logo"
    """
    with _queue(config, database) as queue:
        item = queue.approve(audit_id, reviewer, note, seen=queue.item(audit_id).version)
    if item.status == "approved":
        console.print(f"approved: call {item.audit_id} released {len(item.released)} images (`guardrail review fetch`)")
    else:
        console.print(
            f"approval recorded: call {item.audit_id} has {len(item.approvals)} of {item.approvals_needed} approvals"
        )


@app.command()
def reject(
    audit_id: AuditId,
    reviewer: Reviewer,
    note: Annotated[str, typer.Option("--note", "-n", help="Why (required; recorded in the audit log).")],
    config: ConfigOption = Path("guardrail.yaml"),
    database: DatabaseOption = None,
) -> None:
    """Reject a held call: its images are deleted. Writes the audit log.

    Example: guardrail review reject 3f2a9c1e --reviewer bob --note "the ACME logo, plainly"
    """
    with _queue(config, database) as queue:
        item = queue.reject(audit_id, reviewer, note, seen=queue.item(audit_id).version)
    console.print(f"rejected: call {item.audit_id}; its held images are deleted")


@app.command()
def fetch(
    audit_id: AuditId,
    folder: Annotated[Path, typer.Argument(help="Where to write the released images.")],
    config: ConfigOption = Path("guardrail.yaml"),
    database: DatabaseOption = None,
) -> None:
    """Write an approved call's released images (signed bytes, as they are) into FOLDER.

    Example: guardrail review fetch 3f2a9c1e released/
    """
    with _queue(config, database) as queue:
        paths = queue.fetch(audit_id, folder)
    for path in paths:
        console.print(str(path), highlight=False)


@app.command()
def expire(config: ConfigOption = Path("guardrail.yaml"), database: DatabaseOption = None) -> None:
    """Reject the calls held past review.expire_after and delete their images (every review command
    does this first; run it from cron where nobody reviews for a while). Writes the audit log.

    Example: guardrail review expire --config guardrail.yaml
    """
    with _queue(config, database):
        pass


def _write_evidence(queue: ReviewQueue, item: ReviewItem, folder: Path, config: Path) -> list[Path]:
    """The held images, and for each screening match whose reference image is still where it was
    added (checked by its SHA-256), a picture of the two with the agreeing keypoints."""
    import hashlib
    import io

    from PIL import Image

    from guardrail.config import load_config
    from guardrail.screening.evidence import match_picture
    from guardrail.screening.refsets import ReferenceSet

    folder.mkdir(parents=True, exist_ok=True)
    settings = load_config(config) if config.exists() else None
    sets = settings.screening.reference_sets if settings is not None else {}
    written = []
    matches = item.screening.get("outputs", [])
    for index, image in enumerate(item.images):
        data = queue.held.get(image["held_sha256"])
        extension = "jpg" if image["mime"] == "image/jpeg" else image["mime"].split("/")[-1]
        held = folder / f"{item.audit_id[:12]}-{index}-held.{extension}"
        held.write_bytes(data)
        written.append(held)
        for match in matches[index] if index < len(matches) else []:
            if match["set"] not in sets or settings is None:
                continue
            refset = ReferenceSet.open(settings.path(sets[match["set"]]))
            entry = next((e for e in refset.entries if e.id == match["reference_id"]), None)
            source = _found(entry.source, settings.base_dir) if entry is not None else None
            if entry is None or source is None or hashlib.sha256(source.read_bytes()).hexdigest() != entry.sha256:
                continue
            with Image.open(io.BytesIO(data)) as held_image, Image.open(source) as reference:
                picture, count = match_picture(held_image, reference, mirrored=match["method"].endswith("mirror"))
            path = folder / f"{item.audit_id[:12]}-{index}-vs-{match['set']}-{entry.id}.png"
            picture.save(path)
            written.append(path)
            console.print(f"{path}: {count} agreeing keypoints ({match['method']})", highlight=False)
    return written


def _found(source: str, base_dir: str) -> Path | None:
    for candidate in (Path(source), Path(base_dir) / source):
        if candidate.is_file():
            return candidate
    return None
