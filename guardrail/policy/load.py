"""Reading YAML into strict models, with every error located by file, line, column and field path."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from guardrail.errors import PolicyError, Problem
from guardrail.policy.schema import Policy

M = TypeVar("M", bound=BaseModel)

MAX_POLICY_BYTES = 5 * 1024 * 1024


def read_yaml(text: str, file: str) -> Any:
    """Parse YAML safely, keeping line numbers; duplicate keys and syntax errors raise PolicyError."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    yaml = YAML(typ="rt", pure=True)
    yaml.allow_duplicate_keys = False
    try:
        return yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        message = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        line = mark.line + 1 if mark else None
        column = mark.column + 1 if mark else None
        raise PolicyError([Problem(f"YAML: {message}", file, line, column)]) from None
    except YAMLError as exc:
        raise PolicyError([Problem(f"YAML: {exc}", file)]) from None


def locate(data: Any, path: Sequence[str | int]) -> tuple[int | None, int | None]:
    """1-based line and column of the deepest node on `path` that exists in the parsed YAML."""
    line = column = None
    node = data
    for key in path:
        lc = getattr(node, "lc", None)
        try:
            if lc is not None and isinstance(key, int | str):
                line, column = lc.key(key) if isinstance(key, str) else lc.item(key)
            node = node[key]
        except (KeyError, IndexError, TypeError, AttributeError):
            break
    if line is None and getattr(data, "lc", None) is not None:
        line, column = data.lc.line, data.lc.col
    return (line + 1 if line is not None else None, column + 1 if column is not None else None)


def _field_path(loc: Sequence[str | int]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def validate(
    model: type[M],
    data: Any,
    file: str,
    extra: Sequence[tuple[Sequence[str | int], str]] = (),
    *,
    source: Any = None,
    translate: Callable[[list[str | int]], list[str | int]] = list,
) -> M:
    """Validate parsed YAML against a model; raise PolicyError listing every problem, located in
    `source` (the parsed file, when `data` was derived from it) or in `data` itself; `translate`
    maps a path in `data` to the same item's path in `source`."""
    source = data if source is None else source
    if data is None:
        raise PolicyError([Problem("the file is empty", file, 1, 1)])
    problems: list[Problem] = []
    result: M | None = None
    try:
        result = model.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            loc = translate([p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-"))])
            # A model-level check reports its model's path; a missing key reports the key.
            line, column = locate(source, loc)
            message = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                message = "unknown key"
            problems.append(Problem(message, file, line, column, _field_path(loc) or None))
    for path, message in extra:
        where = translate(list(path))
        line, column = locate(source, where)
        problems.append(Problem(message, file, line, column, _field_path(where)))
    if problems or result is None:
        raise PolicyError(problems)
    return result


def _policy_references(data: Any) -> list[tuple[list[str | int], str]]:
    """Cross-field checks pydantic cannot see per field: duplicate rule ids and unknown term lists."""
    problems: list[tuple[list[str | int], str]] = []
    if not isinstance(data, dict):
        return problems
    rules = data.get("rules") or []
    term_lists = data.get("term_lists") or {}
    seen: dict[str, int] = {}
    for i, rule in enumerate(rules if isinstance(rules, list) else []):
        if not isinstance(rule, dict):
            continue
        rule_id = rule.get("id")
        if isinstance(rule_id, str):
            if rule_id in seen:
                problems.append(
                    (["rules", i, "id"], f"duplicate rule id {rule_id!r} (first at rules[{seen[rule_id]}])")
                )
            seen.setdefault(rule_id, i)
        prompt = rule.get("prompt")
        names = prompt.get("term_lists") if isinstance(prompt, dict) else None
        for j, name in enumerate(names if isinstance(names, list) else []):
            if isinstance(term_lists, dict) and name not in term_lists:
                problems.append((["rules", i, "prompt", "term_lists", j], f"unknown term list {name!r}"))
    return problems


def parse_policy(text: str, file: str = "<policy>", *, environment: str | None = None) -> Policy:
    """Parse and validate policy YAML text (a policy given as text cannot `extends:` another file)."""
    data = read_yaml(text, file)
    if isinstance(data, dict) and data.get("extends"):
        where = locate(data, ["extends"])
        raise PolicyError([Problem("`extends` needs a policy file, not text", file, *where, "extends")])
    return _resolve(data, data, file, environment)


def read_text_file(path: str | Path, *, max_bytes: int = MAX_POLICY_BYTES) -> str:
    """Read a UTF-8 input file, refusing directories, missing files and oversized files with a clear error."""
    p = Path(path)
    try:
        size = p.stat().st_size
        if not p.is_file():
            raise PolicyError([Problem("not a regular file", str(p))])
        if size > max_bytes:
            raise PolicyError([Problem(f"file is {size} bytes; the limit is {max_bytes}", str(p))])
        return p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PolicyError([Problem("file not found", str(p))]) from None
    except UnicodeDecodeError as exc:
        raise PolicyError([Problem(f"not UTF-8 text ({exc.reason} at byte {exc.start})", str(p))]) from None
    except OSError as exc:
        raise PolicyError([Problem(f"cannot read: {exc.strerror}", str(p))]) from None


def load_policy(path: str | Path, *, environment: str | None = None) -> Policy:
    """Load a policy file: its `extends:` chain merged, then the `environment`'s overrides applied.

    Raises PolicyError naming file, line, column and field for every problem.
    """
    file = str(path)
    data = read_yaml(read_text_file(path), file)
    merged = _merged(Path(path), data, seen=())
    return _resolve(merged, data, file, environment)


def policy_files(path: str | Path) -> list[Path]:
    """The policy file and every file it extends, for reloading when any of them changes."""
    files = [Path(path).resolve()]
    while True:
        data = read_yaml(read_text_file(files[-1]), str(files[-1]))
        parent = data.get("extends") if isinstance(data, dict) else None
        if not isinstance(parent, str) or (files[-1].parent / parent).resolve() in files:
            return files
        files.append((files[-1].parent / parent).resolve())


def _merged(path: Path, data: Any, seen: tuple[Path, ...]) -> Any:
    """The file's data on top of its parent's (recursively); the parent must be a valid policy itself."""
    parent = data.get("extends") if isinstance(data, dict) else None
    if parent is None:
        return data
    file = str(path)
    where = locate(data, ["extends"])
    if not isinstance(parent, str):
        raise PolicyError([Problem("`extends` must be a file path", file, *where, "extends")])
    parent_path = (path.parent / parent).resolve()
    if parent_path in seen or parent_path == path.resolve():
        raise PolicyError([Problem(f"`extends` makes a cycle through {parent_path}", file, *where, "extends")])
    parent_data = read_yaml(read_text_file(parent_path), str(parent_path))
    validate(Policy, parent_data, str(parent_path), _policy_references(parent_data))  # the parent stands alone
    return merge(_merged(parent_path, parent_data, (*seen, path.resolve())), data)


def merge(base: Any, overlay: Any) -> dict[str, Any]:
    """`overlay` on top of `base`: mappings merge key by key, `rules` merge by id (a rule with the same
    id replaces the parent's, in its place; new rules come after), anything else is replaced."""
    out = dict(base)
    for key, value in overlay.items():
        if key == "extends":
            continue
        if key == "rules" and isinstance(value, list) and isinstance(out.get("rules"), list):
            rules = {(r.get("id") if isinstance(r, dict) else None) or f"#{i}": r for i, r in enumerate(out["rules"])}
            for i, rule in enumerate(value):
                rules[(rule.get("id") if isinstance(rule, dict) else None) or f"#new{i}"] = rule
            out["rules"] = list(rules.values())
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def _resolve(merged: Any, source: Any, file: str, environment: str | None) -> Policy:
    """Validate the merged data with the environment's overrides applied; the result has neither
    `extends` nor `environments`, so its version hash is that of what decisions actually use."""
    if isinstance(merged, dict):
        environments = merged.get("environments") or {}
        if environment is not None:
            if not isinstance(environments, dict) or environment not in environments:
                known = ", ".join(environments) if isinstance(environments, dict) else ""
                message = f"unknown environment {environment!r} (defined: {known or 'none'})"
                raise PolicyError([Problem(message, file, *locate(source, ["environments"]), "environments")])
            overlay = environments[environment]
            if not isinstance(overlay, dict):
                where = locate(source, ["environments", environment])
                raise PolicyError([Problem("an environment is a mapping of overrides", file, *where)])
            merged = merge(merged, overlay)
        # Overrides are checked as part of the whole; each environment must produce a valid policy.
        for name, overlay in environments.items() if isinstance(environments, dict) else ():
            if name != environment and isinstance(overlay, dict):
                validate(Policy, {**merge(merged, overlay), "environments": {}}, file, source=source)
        merged = {k: v for k, v in merged.items() if k not in ("extends", "environments")}
    translate = _rule_origins(merged, source)
    return validate(Policy, merged, file, _policy_references(merged), source=source, translate=translate)


def _rule_origins(merged: Any, source: Any) -> Callable[[list[str | int]], list[str | int]]:
    """Map `rules[i]` of the merged policy to where that rule is written in this file (its own
    rules or an environment's), so errors name the line an author can find; inherited rules were
    already checked in their own file."""
    origins: dict[int, list[str | int]] = {}
    if isinstance(source, dict):
        for j, rule in enumerate(source.get("rules") or []):
            origins[id(rule)] = ["rules", j]
        environments = source.get("environments")
        for name, overlay in environments.items() if isinstance(environments, dict) else ():
            for j, rule in enumerate(overlay.get("rules") or [] if isinstance(overlay, dict) else []):
                origins[id(rule)] = ["environments", name, "rules", j]
    rules = merged.get("rules") if isinstance(merged, dict) else None

    def translate(path: list[str | int]) -> list[str | int]:
        index = path[1] if len(path) >= 2 and path[0] == "rules" else None
        if isinstance(index, int) and isinstance(rules, list) and index < len(rules) and id(rules[index]) in origins:
            return [*origins[id(rules[index])], *path[2:]]
        return path

    return translate
