"""The package's boundaries, read from its source: no module imports another module's private name.

A private module (``pgfast._mdp``, the compiled ``pgfast._core``) may be imported, and so may the
public names inside it; a name with a leading underscore (``_check_gamma``) is its module's own and
is never imported elsewhere (dunders such as ``__version__`` are not private).
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "python" / "pgfast"


def _is_module(dotted: str) -> bool:
    try:
        return importlib.util.find_spec(dotted) is not None
    except (ImportError, ValueError):  # a parent that is a module, not a package
        return False


def private_imports(source: str, module: str) -> list[str]:
    """``from X import _name`` statements of ``source`` (the code of the dotted ``module``) that
    import a private name of a pgfast module, as "line N: from X import _name"."""
    package = module.rsplit(".", 1)[0] if not module.endswith(".__init__") else module[: -len(".__init__")]
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.ImportFrom):
            continue
        if node.level:
            parts = package.split(".")
            if node.level > len(parts):  # above the top-level package: not an import Python can run
                continue
            base = ".".join(parts[: len(parts) - node.level + 1])
            target = f"{base}.{node.module}" if node.module else base
        else:
            target = node.module or ""
        if target != "pgfast" and not target.startswith("pgfast."):
            continue
        for alias in node.names:
            name = alias.name
            if name.startswith("_") and not (name.startswith("__") and name.endswith("__")) and not _is_module(f"{target}.{name}"):
                found.append(f"line {node.lineno}: from {'.' * node.level}{node.module or ''} import {name}")
    return found


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _dotted(path: Path) -> str:
    return ".".join(("pgfast",) + path.relative_to(PACKAGE).with_suffix("").parts)


def test_the_package_source_is_found() -> None:
    names = {_dotted(p) for p in _modules()}
    assert {"pgfast.__init__", "pgfast._estimators", "pgfast.exact", "pgfast.benchmarks.reference"} <= names


@pytest.mark.parametrize("path", _modules(), ids=_dotted)
def test_no_module_imports_another_modules_private_name(path: Path) -> None:
    found = private_imports(path.read_text(encoding="utf-8"), _dotted(path))
    assert not found, f"{_dotted(path)} imports private names of other modules: " + "; ".join(found)


def test_the_check_finds_private_names() -> None:
    source = "\n".join([
        "from . import _core, _returns, exact",         # modules: allowed
        "from ._validation import as_int",              # a public name of a private module: allowed
        "from pgfast import __version__",               # a dunder: allowed
        "from numpy import _pytesttester",              # not pgfast's
        "from ._mdp import FiniteMDP, _check_gamma",    # private
        "from pgfast._policy import _THETA_LOCK",       # private, absolute
        "from .. import _reference_softmax",            # private, from the parent package
    ])
    assert private_imports(source, "pgfast._estimators") == [
        "line 5: from ._mdp import _check_gamma",
        "line 6: from pgfast._policy import _THETA_LOCK",
    ]
    assert private_imports(source, "pgfast.benchmarks.exact")[-1] == "line 7: from .. import _reference_softmax"
    assert private_imports("from ._harness import _timer", "pgfast.benchmarks.__init__") == ["line 1: from ._harness import _timer"]
