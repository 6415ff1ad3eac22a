"""The package's shape: no import circle, layers that do not reach back, SQL only in the audit layer,
a CLI on the public API, one error tree. Read from the source (every import, lazy ones included)."""

import ast
import inspect
import pkgutil
from pathlib import Path

import guardrail
from tests.conftest import REPO

PACKAGE = REPO / "guardrail"


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports(path: Path) -> list[tuple[str, list[str]]]:
    """(module, names) of every import statement in a file, at any depth (lazy and TYPE_CHECKING too)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, [alias.name for alias in node.names]))
        elif isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names]
    return found


def graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {name: set() for name in MODULES}
    for name, path in MODULES.items():
        for module, names in imports(path):
            for target in [module, *(f"{module}.{n}" for n in names)]:
                if target in MODULES and target not in (name, "guardrail"):
                    edges[name].add(target)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in edges[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in edges:
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_circle() -> None:
    assert cycles(graph()) == []


def reaches(layer: str, other: str) -> list[str]:
    return sorted(
        f"{name} -> {target}"
        for name, targets in graph().items()
        if name.startswith(f"guardrail.{layer}")
        for target in targets
        if target.startswith(f"guardrail.{other}")
    )


def test_layers_do_not_reach_back() -> None:
    assert reaches("provenance", "audit") == []
    for other in ("audit", "screening", "provenance", "pipeline", "guard", "cli"):
        assert reaches("policy", other) == []
    for lower in ("audit", "screening", "provenance", "request", "privacy", "images", "errors"):
        assert reaches(lower, "pipeline") == [] and reaches(lower, "guard") == []


def test_sql_lives_only_in_the_audit_layer() -> None:
    outside = sorted(
        name
        for name, path in MODULES.items()
        if not name.startswith("guardrail.audit")
        and any(
            module.split(".")[0] == "sqlalchemy" and (module, names) != ("sqlalchemy.engine", ["Engine"])
            for module, names in imports(path)
        )  # the Engine type may be named (a caller passes one in); nothing else
    )
    assert outside == []


def test_the_cli_imports_no_private_name_and_runs_no_sql() -> None:
    for name, path in MODULES.items():
        if not name.startswith("guardrail.cli"):
            continue
        for module, names in imports(path):
            if module == "__future__":
                continue
            assert not any(part.startswith("_") for part in module.split(".")), (name, module)
            assert not [n for n in names if n.startswith("_")], (name, module, names)
            assert not module.startswith(("sqlalchemy", "guardrail.audit.tables")), (name, module)


def test_every_error_guardrail_raises_is_in_the_one_tree() -> None:
    errors = []
    for info in pkgutil.walk_packages(guardrail.__path__, "guardrail."):
        if info.name.startswith("guardrail.cli"):
            continue  # typer's own exits; the CLI's boundary is tested by the CLI tests
        module = __import__(info.name, fromlist=["_"])
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, BaseException) and cls.__module__.startswith("guardrail"):
                errors.append(cls)
    assert errors and all(cls.__module__ == "guardrail.errors" for cls in errors), errors
    assert all(issubclass(cls, guardrail.GuardrailError) for cls in errors)
    tree = (PACKAGE / "errors.py").read_text(encoding="utf-8").split('"""')[1]
    assert all(cls.__name__ in tree for cls in errors)  # each one is drawn in the tree at the top
    assert {cls.__name__ for cls in errors} <= set(guardrail.__all__)
