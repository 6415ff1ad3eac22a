"""Reading YAML into strict models, with every error located by file, line, column and field path."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from guardrail.errors import PolicyError, Problem
from guardrail.policy.schema import Policy

M = TypeVar("M", bound=BaseModel)

MAX_POLICY_BYTES = 5 * 1024 * 1024
MAX_DEPTH = 50
"""Nesting of collections in one YAML file (a policy needs about 6); deeper is refused before the
YAML composer's recursion could overflow the stack."""
MAX_NODES = 250_000
"""YAML nodes in one file with every alias expanded (100 rules of 1,000 terms is about 100,000).
Composing stops at the first node past it, so a file of MAX_POLICY_BYTES costs at most what 250,000
nodes cost (about 210 MB and 20 s in the pure-Python parser here), however its aliases multiply."""


def read_yaml(text: str, file: str) -> Any:
    """Parse YAML safely, keeping line numbers; syntax errors, duplicate keys, nesting deeper than
    MAX_DEPTH and more than MAX_NODES nodes after alias expansion raise PolicyError."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    yaml = YAML(typ="rt", pure=True)
    yaml.allow_duplicate_keys = False
    yaml.max_depth = MAX_DEPTH
    yaml.Composer = _bounded_composer()
    try:
        return yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        message = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        if type(exc).__name__ == "MaxDepthExceededError":  # ruamel's text tells its own API user what to do
            message = f"collections nested more than {MAX_DEPTH} levels deep"
        line = mark.line + 1 if mark else None
        column = mark.column + 1 if mark else None
        raise PolicyError([Problem(f"YAML: {message}", file, line, column)]) from None
    except YAMLError as exc:
        raise PolicyError([Problem(f"YAML: {exc}", file)]) from None


@functools.cache
def _bounded_composer() -> Any:
    """ruamel's Composer, counting nodes as aliases expand them: an alias counts the whole subtree it
    names, so a 'billion laughs' document is refused at the alias that crosses MAX_NODES."""
    from ruamel.yaml.composer import Composer, ComposerError
    from ruamel.yaml.events import AliasEvent

    class BoundedComposer(Composer):  # type: ignore[misc]
        def compose_node(self, parent: Any, index: Any) -> Any:
            counts = self.__dict__.setdefault("_guardrail_counts", {"nodes": 0, "sizes": {}})
            event = self.parser.peek_event()
            if isinstance(event, AliasEvent):
                added = counts["sizes"].get(event.anchor, 1)
            else:
                added, start = 1, counts["nodes"]
            counts["nodes"] += added
            if counts["nodes"] > MAX_NODES:
                raise ComposerError(
                    None, None, f"more than {MAX_NODES} nodes once aliases are expanded", event.start_mark
                )
            node = super().compose_node(parent, index)
            if not isinstance(event, AliasEvent) and event.anchor is not None:
                counts["sizes"][event.anchor] = counts["nodes"] - start
            return node

    return BoundedComposer


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
    if not isinstance(merged, dict):
        return validate(Policy, merged, file, source=source)
    environments = merged.get("environments") or {}
    if environment is not None and (not isinstance(environments, dict) or environment not in environments):
        known = ", ".join(environments) if isinstance(environments, dict) else ""
        message = f"unknown environment {environment!r} (defined: {known or 'none'})"
        raise PolicyError([Problem(message, file, *locate(source, ["environments"]), "environments")])
    base = {k: v for k, v in merged.items() if k not in ("extends", "environments")}
    # Each environment must produce a valid policy on top of the base; the one asked for is checked first.
    names = sorted(environments, key=lambda n: n != environment) if isinstance(environments, dict) else []
    selected = None
    for name in names:
        overlay = environments[name]
        if not isinstance(overlay, dict):
            where = locate(source, ["environments", name])
            raise PolicyError([Problem("an environment is a mapping of overrides", file, *where)])
        policy = _in_environment(name, overlay, {**merge(base, overlay), "environments": {}}, file, source)
        selected = policy if name == environment else selected
    if selected is not None:
        return selected
    translate = _rule_origins(base, source)
    return validate(Policy, base, file, _policy_references(base), source=source, translate=translate)


def _in_environment(name: str, overlay: dict[str, Any], merged: Any, file: str, source: Any) -> Policy:
    """Validate a policy with an environment's overrides: a problem in a value the environment sets
    is located where the environment sets it, and every problem names the environment."""
    merged = {k: v for k, v in merged.items() if k != "environments"}
    rules = _rule_origins(merged, source)

    def translate(path: list[str | int]) -> list[str | int]:
        if path and path[0] != "rules" and _holds(overlay, path):
            return ["environments", name, *path]
        return rules(path)

    try:
        return validate(Policy, merged, file, _policy_references(merged), source=source, translate=translate)
    except PolicyError as exc:
        named = [replace(p, message=f"{p.message} (with environment {name!r})") for p in exc.problems]
        raise PolicyError(named) from None


def _holds(data: Any, path: Sequence[str | int]) -> bool:
    """Whether `path` leads into `data` (the first key at least: the rest may be a value it replaced)."""
    node = data
    for depth, key in enumerate(path):
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            return depth > 0
    return True


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
