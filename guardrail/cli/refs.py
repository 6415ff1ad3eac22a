"""guardrail refs: build and inspect protected reference sets, and match images against them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from guardrail.cli.common import ConfigOption, configured_embedder
from guardrail.cli.output import JsonOption, console, emit, emit_line

app = typer.Typer(help="Protected reference sets (logos, characters, artworks, your own assets).", no_args_is_help=True)

Root = Annotated[
    Path, typer.Option("--root", envvar="GUARDRAIL_REFS", help="Folder that holds the sets.", file_okay=False)
]


def _folder(root: Path, name: str) -> Path:
    """The set's folder under the root; names are plain (no path separators, no `..`)."""
    from guardrail.screening.refsets import SET_NAME

    if not SET_NAME.fullmatch(name):
        raise typer.BadParameter(
            f"{name!r} is not a set name: use letters, digits, '.', '_' and '-', starting with a letter or digit",
            param_hint="NAME",
        )
    return root / name


def _prepare_indexes(refset: Any) -> None:
    """Build a large set's search indexes now, so that screening processes only load them."""
    from guardrail.screening.screen import prepare_indexes

    with console.status(f"indexing {refset.name}"):
        prepare_indexes(refset)


@app.command()
def add(
    name: Annotated[str, typer.Argument(help="The set (created when new).")],
    paths: Annotated[list[Path], typer.Argument(help="Image files or folders.")],
    label: Annotated[
        str | None, typer.Option("--label", "-l", help="Label for these images (default: file name).")
    ] = None,
    recursive: Annotated[bool, typer.Option("--recursive", "-r", help="Descend into folders.")] = False,
    root: Root = Path(".guardrail/refs"),
    config: ConfigOption = Path("guardrail.yaml"),
) -> None:
    """Add images to a reference set, with a progress bar: perceptual hashes, keypoints and, when
    guardrail.yaml configures an embedding model, CLIP embeddings. Images are size-limited before
    decoding. Writes the set's files.

    Example: guardrail refs add brand-logos assets/logos --recursive --label "ACME logo"
    """
    from rich.progress import Progress

    from guardrail.screening.refsets import ReferenceSet, image_files

    files = image_files(paths, recursive=recursive)
    if not files:
        raise typer.BadParameter("no image files found", param_hint="PATHS")
    folder = _folder(root, name)
    embedder = configured_embedder(config)
    # a new set is written by its first successful add: a bad file leaves no empty set behind
    refset = ReferenceSet.open(folder) if (folder / "refset.json").exists() else ReferenceSet.new(folder, name)
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task(f"fingerprinting into {name}", total=len(files))
        added = refset.add(
            ((label or f.stem, str(f), f) for f in files), progress=lambda: progress.advance(task), embedder=embedder
        )
    _prepare_indexes(refset)
    embedded = f", embedded with {embedder.identity}" if embedder is not None else ""
    console.print(f"added {len(added)} images to {name} ({len(refset.entries)} in all) at {folder}{embedded}")


@app.command("list")
def list_(
    name: Annotated[str | None, typer.Argument(help="Show one set's references.")] = None,
    root: Root = Path(".guardrail/refs"),
    as_json: JsonOption = False,
) -> None:
    """List the sets, or one set's references. Reads only.

    Example: guardrail refs list brand-logos --json
    """
    from guardrail.screening.refsets import ReferenceSet, describe

    if name is None:
        sets = [describe(ReferenceSet.open(p.parent)) for p in sorted(root.glob("*/refset.json"))]
        emit(sets, as_json=as_json, as_csv=False, columns=("name", "references", "folder", "fingerprint"))
        return
    refset = ReferenceSet.open(_folder(root, name))
    rows = [e.__dict__ for e in refset.entries]
    emit(rows, as_json=as_json, as_csv=False, columns=("id", "label", "source", "added_at"), title=name)


@app.command()
def remove(
    name: Annotated[str, typer.Argument(help="The set.")],
    ids: Annotated[list[str], typer.Argument(help="Reference ids (or unique prefixes).")],
    root: Root = Path(".guardrail/refs"),
) -> None:
    """Remove references from a set. Writes the set's files.

    Example: guardrail refs remove brand-logos 3fa2c1
    """
    from guardrail.screening.refsets import ReferenceSet

    refset = ReferenceSet.open(_folder(root, name))
    removed = refset.remove(ids)
    if not removed:
        raise typer.BadParameter(f"no reference in {name} matches {', '.join(ids)}", param_hint="IDS")
    _prepare_indexes(refset)
    console.print(f"removed {removed} references from {name}")


@app.command("match")
def match_(
    images: Annotated[list[Path], typer.Argument(help="Images to check.")],
    set_: Annotated[list[str] | None, typer.Option("--set", "-s", help="Only these sets (default: all).")] = None,
    max_distance: Annotated[
        int | None, typer.Option("--max-distance", help="pHash bits (0-32); default: the policy's.", min=0, max=32)
    ] = None,
    min_inliers: Annotated[
        int | None,
        typer.Option("--min-inliers", help="Agreeing keypoints (0: tier off); default: the policy's.", min=0),
    ] = None,
    min_similarity: Annotated[
        float | None,
        typer.Option("--min-similarity", help="CLIP cosine similarity; default: the policy's.", min=-1, max=1),
    ] = None,
    root: Root = Path(".guardrail/refs"),
    config: ConfigOption = Path("guardrail.yaml"),
    as_json: JsonOption = False,
) -> None:
    """Match images against reference sets: per image, each match's set, reference id, label, method,
    score (pHash distance, keypoint inliers or CLIP similarity), threshold and verdict. Exits 1 when any image matches.
    Reads only.

    Example: guardrail refs match out.png --set brand-logos --json
    """
    from guardrail.images import open_image
    from guardrail.screening.refsets import ReferenceSet
    from guardrail.screening.screen import Thresholds, check_embeddings, screen

    names = set_ or [p.parent.name for p in sorted(root.glob("*/refset.json"))]
    refsets = {name: ReferenceSet.open(_folder(root, name)) for name in names}
    policy = Thresholds()  # a policy's defaults (guardrail.policy.schema.ScreeningSet)
    rule = Thresholds(
        policy.max_distance if max_distance is None else max_distance,
        policy.min_inliers if min_inliers is None else (min_inliers or None),
        policy.min_similarity if min_similarity is None else min_similarity,
        action="match",
    )
    embedder = configured_embedder(config) if any(refset.embedding for refset in refsets.values()) else None
    check_embeddings(refsets, embedder)  # before the first image: a wrong model is one clear error
    any_match = False
    for path in images:
        image = open_image(path)  # InvalidImage / ImageTooLarge name the file: exit 2
        [found] = screen([image], dict.fromkeys(refsets, rule), refsets, embedder)
        any_match |= bool(found)
        result = {
            "image": str(path),
            "verdict": "match" if found else "no match",
            "matches": [m.as_dict() for m in found],
        }
        if as_json:
            emit_line(result)
        else:
            console.print(f"{result['verdict']}: {path}", markup=False)
            for m in found:
                console.print(
                    f"  {m.set} {m.reference_id} {m.label!r} {m.describe()}",
                    markup=False,
                )
    if any_match:
        raise typer.Exit(1)


@app.command()
def calibrate(
    name: Annotated[str, typer.Argument(help="The set.")],
    negatives: Annotated[
        Path, typer.Option("--negatives", "-n", help="Folder of your images that are NOT protected (recursive).")
    ],
    images: Annotated[
        Path | None,
        typer.Option("--images", help="Where the set's own images are now (default: where they were added from)."),
    ] = None,
    target_fpr: Annotated[
        float, typer.Option("--target-fpr", help="False matches allowed among the negatives.", min=0.0, max=0.5)
    ] = 0.001,
    variants: Annotated[int, typer.Option("--variants", help="Edited copies per image and family.", min=1)] = 2,
    write: Annotated[
        Path | None, typer.Option("--write", help="Put the thresholds into this policy file (comments kept).")
    ] = None,
    root: Root = Path(".guardrail/refs"),
    as_json: JsonOption = False,
) -> None:
    """Pick a set's thresholds on your own data: the set's images, edited by the evaluation's families
    (JPEG, resize, crop, flip, rotation, colour, blur, noise, text, borders, screenshots; composites over
    your images, heavy crops, rotations to 90 degrees, perspective), against your
    unprotected images and random patches of them. Prints, per tier, the loosest threshold whose false
    matches stay within --target-fpr, and the recall it gives per family; --write updates the set's
    thresholds in a policy file. Reads the set's images by their SHA-256, so a moved or changed file is
    not mistaken for the one protected.

    Example: guardrail refs calibrate brand-logos --negatives assets/not-protected --write policies/default.yaml
    """
    import hashlib

    from rich.progress import Progress

    from guardrail.images import open_image, read_limited
    from guardrail.screening.calibrate import PATCHES_PER_NEGATIVE, families_for, write_thresholds
    from guardrail.screening.calibrate import calibrate as run_calibration
    from guardrail.screening.refsets import ReferenceSet, image_files

    if write is not None and not write.is_file():  # refused before the work, not after it
        raise typer.BadParameter(f"{write}: no such policy file", param_hint="--write")
    refset = ReferenceSet.open(_folder(root, name))
    by_digest: dict[str, Path] = {}
    candidates = image_files([images], recursive=True) if images is not None else []
    candidates += [Path(e.source) for e in refset.entries if Path(e.source).is_file()]
    for path in candidates:
        by_digest.setdefault(hashlib.sha256(path.read_bytes()).hexdigest(), path)
    protected = [
        (i, open_image(read_limited(by_digest[e.sha256]), name=str(by_digest[e.sha256])))
        for i, e in enumerate(refset.entries)
        if e.sha256 in by_digest
    ]
    if not protected:
        raise typer.BadParameter(f"none of {name}'s images was found; give --images DIR", param_hint="--images")
    others = [open_image(read_limited(p), name=str(p)) for p in image_files([negatives], recursive=True)]
    if not others:
        raise typer.BadParameter(f"no images in {negatives}", param_hint="--negatives")
    total = len(protected) * len(families_for(others)) * variants + len(others) * (1 + PATCHES_PER_NEGATIVE)
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task(f"calibrating {name}", total=total)
        result = run_calibration(
            refset, protected, others, target_fpr=target_fpr, variants=variants, progress=lambda: progress.advance(task)
        )
    if write is not None:
        try:
            write_thresholds(write, name, result)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--write") from None
    if as_json:
        emit_line(result.as_dict())
        return
    missing = len(refset.entries) - len(protected)
    console.print(
        f"{name}: {len(protected)} protected images{f' ({missing} not found)' if missing else ''}, "
        f"{result.positives} edited copies, {result.negatives} negatives; target FPR {target_fpr:g}",
        highlight=False,
    )
    console.print(
        f"  phash max_distance {result.max_distance}, keypoints min_inliers {result.min_inliers}: "
        f"recall {result.recall:.1%} at a measured FPR of {result.fpr:.2%}",
        highlight=False,
    )
    rows = [{"family": f, **{k: f"{v:.1%}" for k, v in r.items()}} for f, r in result.by_family.items()]
    emit(rows, as_json=False, as_csv=False, columns=("family", "phash", "keypoints", "both"), title="recall")
    if write is not None:
        console.print(f"wrote the thresholds into {write}")
