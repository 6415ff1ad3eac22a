import subprocess
import sys

import guardrail
from tests.conftest import REPO


def test_every_exported_name_resolves_to_where_it_is_defined() -> None:
    # the lazy table names a module for each name: a name moved to another module fails here
    for name in guardrail.__all__:
        value = getattr(guardrail, name)
        assert value is not None, name
        if hasattr(value, "__module__") and name != "__version__":
            assert value.__module__.startswith("guardrail."), (name, value.__module__)
    # and the names a type checker sees are the same as the names served at run time
    source = (REPO / "guardrail" / "__init__.py").read_text(encoding="utf-8")
    checked = source.split("if TYPE_CHECKING:", 1)[1]
    assert {n for n in guardrail.__all__ if n != "__version__" and n not in checked} == set()


def test_import_is_light() -> None:
    code = "import sys, guardrail; print(sorted(m for m in ('torch','diffusers','open_clip','sqlalchemy','pydantic') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
