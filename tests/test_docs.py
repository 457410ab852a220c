"""The documentation: the API reference lists every public name, the docs' cross-references
point at objects that exist, the public callables carry numpydoc sections with examples, and
those examples run (as doctests of the installed modules).

The examples assume ``import numpy as np`` and ``import pgfast as pg`` (the convention of the
docs), so the doctests run with those two names in their globals.
"""

from __future__ import annotations

import doctest
import importlib
import inspect
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import pgfast as pg
from pgfast import exact, optim

DOCS = Path(__file__).resolve().parent.parent / "docs"
API = DOCS / "api.md"

# ``.. autoclass:: pgfast.X``, ``.. autofunction::``, ``.. autodata::``, ``.. automodule::``, ``.. py:data::``
_DIRECTIVE = re.compile(r"^\.\. (?:auto(?:class|function|data|module|method|attribute)|py:\w+)::\s+(\S+)", re.M)
# MyST roles {py:func}`pgfast.x`, {py:class}`~pgfast.X`, ...
_ROLE = re.compile(r"\{py:(?:func|class|meth|attr|data|mod)\}`~?([\w.]+)`")


def _documented() -> set[str]:
    return set(_DIRECTIVE.findall(API.read_text(encoding="utf-8")))


def _exact_public() -> list[str]:
    """Every public function and class defined in pgfast.exact (its __all__ and anything else)."""
    names = set(exact.__all__)
    for name, obj in vars(exact).items():
        if name.startswith("_"):
            continue
        if (inspect.isfunction(obj) or inspect.isclass(obj)) and obj.__module__ == exact.__name__:
            names.add(name)
    return sorted(names)


def _public_names() -> list[str]:
    out = [f"pgfast.{n}" for n in pg.__all__]
    out += [f"pgfast.exact.{n}" for n in _exact_public()]
    out += [f"pgfast.optim.{n}" for n in optim.__all__]
    return out


def test_api_reference_exists_and_has_directives() -> None:
    documented = _documented()
    assert len(documented) >= 30, f"docs/api.md documents only {sorted(documented)}"


@pytest.mark.parametrize("name", _public_names())
def test_public_name_in_api_reference(name: str) -> None:
    documented = _documented()
    assert name in documented, f"{name} is public but docs/api.md does not document it"


def _resolve(dotted: str) -> Any:
    """The object a dotted name refers to (module, then attributes), or raise LookupError."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        modname = ".".join(parts[:i])
        try:
            obj: Any = importlib.import_module(modname)
        except ImportError:
            continue
        for attr in parts[i:]:
            if not hasattr(obj, attr):
                raise LookupError(f"{dotted}: {modname} has no attribute path {'.'.join(parts[i:])}")
            obj = getattr(obj, attr)
        return obj
    raise LookupError(f"{dotted}: no importable module")


def _doc_pages() -> list[Path]:
    return sorted(DOCS.rglob("*.md"))


def test_docs_pages_exist() -> None:
    names = {p.relative_to(DOCS).as_posix() for p in _doc_pages()}
    for page in ("index.md", "getting-started.md", "theory.md", "api.md", "benchmarks.md"):
        assert page in names


@pytest.mark.parametrize("page", _doc_pages(), ids=lambda p: p.relative_to(DOCS).as_posix())
def test_docs_cross_references_resolve(page: Path) -> None:
    """Every {py:...} role and autodoc directive of a page names an object that exists."""
    text = page.read_text(encoding="utf-8")
    targets = set(_ROLE.findall(text)) | set(_DIRECTIVE.findall(text))
    missing = []
    for t in sorted(targets):
        try:
            _resolve(t)
        except LookupError as exc:
            missing.append(str(exc))
    assert not missing, f"{page.name}: " + "; ".join(missing)


def test_theory_links_each_formula_to_its_function() -> None:
    """The theory page names the function computing each formula it states."""
    text = (DOCS / "theory.md").read_text(encoding="utf-8")
    linked = set(_ROLE.findall(text))
    for target in (
        "pgfast.score", "pgfast.policy_gradient", "pgfast.log_likelihood", "pgfast.Trajectories.returns",
        "pgfast.Trajectories.reward_to_go", "pgfast.ValueBaseline", "pgfast.importance_weights",
        "pgfast.off_policy_gradient", "pgfast.off_policy_value", "pgfast.TabularSoftmax",
        "pgfast.LinearSoftmax", "pgfast.MLPSoftmax", "pgfast.exact.evaluate", "pgfast.exact.gradient",
        "pgfast.exact.stationary_distribution", "pgfast.exact.fisher", "pgfast.exact.natural_gradient",
        "pgfast.optim.NaturalGradient", "pgfast.optim.GradientAscent", "pgfast.train",
    ):
        assert target in linked, f"docs/theory.md does not link {target}"


# -- numpydoc sections and examples ---------------------------------------------------------------

# The public callables whose docstrings carry numpydoc Parameters / Returns and a runnable Examples
# block (result containers such as PolicyGradient are documented through the functions returning them).
WITH_EXAMPLES = [
    "pgfast.FiniteMDP", "pgfast.FiniteMDP.sample", "pgfast.FiniteMDP.from_gymnasium",
    "pgfast.FiniteMDP.to_gymnasium",
    "pgfast.TabularSoftmax", "pgfast.LinearSoftmax", "pgfast.MLPSoftmax",
    "pgfast.Trajectories", "pgfast.Trajectories.returns", "pgfast.Trajectories.reward_to_go",
    "pgfast.policy_gradient", "pgfast.score", "pgfast.log_likelihood", "pgfast.importance_weights",
    "pgfast.off_policy_gradient", "pgfast.off_policy_value", "pgfast.ValueBaseline", "pgfast.train",
    "pgfast.build_info",
    "pgfast.exact.evaluate", "pgfast.exact.gradient", "pgfast.exact.fisher", "pgfast.exact.fisher_weights",
    "pgfast.exact.natural_gradient", "pgfast.exact.stationary_distribution", "pgfast.exact.optimal",
    "pgfast.optim.GradientAscent", "pgfast.optim.Adam", "pgfast.optim.NaturalGradient",
]


@pytest.mark.parametrize("name", WITH_EXAMPLES)
def test_docstring_has_numpydoc_sections(name: str) -> None:
    obj = _resolve(name)
    doc = inspect.getdoc(obj) or ""
    assert re.search(r"^Examples\n-{8}", doc, re.M), f"{name}: no Examples section"
    assert ">>> " in doc, f"{name}: the Examples section has no example"
    target = obj.__init__ if inspect.isclass(obj) else obj
    params = [p for p in inspect.signature(target).parameters if p not in ("self", "cls")]
    if params:
        assert re.search(r"^Parameters\n-{10}", doc, re.M), f"{name}: no Parameters section"
    if not inspect.isclass(obj):
        assert re.search(r"^Returns\n-{7}", doc, re.M), f"{name}: no Returns section"


def test_docstrings_do_not_cite_sources_the_user_lacks() -> None:
    """Docstrings cite the docs' theory page, not internal notes or tracker numbers."""
    bad = re.compile(r"\bseed 00\d\b|\bseeds?'|\bissue \d+|\bsection 4\.\d", re.I)
    offenders = []
    for mod in _doctest_modules():
        for name, obj in _walk(mod):
            doc = inspect.getdoc(obj) or ""
            if bad.search(doc):
                offenders.append(f"{name}: {bad.search(doc).group(0)!r}")  # type: ignore[union-attr]
    assert not offenders, offenders


def _doctest_modules() -> list[Any]:
    """pgfast, pgfast.exact, pgfast.optim and the modules defining the public names."""
    names = {"pgfast", "pgfast.exact", "pgfast.optim"}
    for n in pg.__all__:
        obj = getattr(pg, n)
        mod = getattr(obj, "__module__", None)
        if isinstance(mod, str) and mod.startswith("pgfast") and inspect.getmodule(obj) is not None:
            names.add(mod)
    return [sys.modules[m] if m in sys.modules else importlib.import_module(m) for m in sorted(names)]


def _walk(mod: Any) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = [(mod.__name__, mod)]
    for name, obj in vars(mod).items():
        if name.startswith("_") or getattr(obj, "__module__", None) != mod.__name__:
            continue
        out.append((f"{mod.__name__}.{name}", obj))
        if inspect.isclass(obj):
            for m, v in vars(obj).items():
                if not m.startswith("_") or m == "__init__":
                    out.append((f"{mod.__name__}.{name}.{m}", getattr(v, "fget", v)))
    return out


def _doctests() -> list[doctest.DocTest]:
    finder = doctest.DocTestFinder(exclude_empty=True)
    tests: list[doctest.DocTest] = []
    for mod in _doctest_modules():
        tests += [t for t in finder.find(mod, mod.__name__, globs={"np": np, "pg": pg}) if t.examples]
    return sorted(tests, key=lambda t: t.name)


_DOCTESTS = _doctests()


def test_doctests_found() -> None:
    names = {t.name for t in _DOCTESTS}
    for required in ("policy_gradient", "FiniteMDP.sample", "exact.gradient", "Adam", "train"):
        assert any(n.endswith(required) for n in names), f"no doctest for {required}"


@pytest.mark.parametrize("test", _DOCTESTS, ids=lambda t: t.name)
def test_docstring_examples_run(test: doctest.DocTest) -> None:
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    report: list[str] = []
    result = runner.run(test, out=report.append, clear_globs=True)
    assert result.attempted > 0
    assert result.failed == 0, "".join(report)


# -- the code of the pages ------------------------------------------------------------------------

_PY_BLOCK = re.compile(r"```python\n(.*?)```", re.S)
_PAGES_WITH_CODE = [p for p in _doc_pages() if _PY_BLOCK.search(p.read_text(encoding="utf-8"))]


def test_pages_have_code() -> None:
    names = {p.name for p in _PAGES_WITH_CODE}
    assert {"getting-started.md", "estimators.md", "exact.md", "train.md"} <= names


@pytest.mark.parametrize("page", _PAGES_WITH_CODE, ids=lambda p: p.relative_to(DOCS).as_posix())
def test_page_code_runs(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The ``python`` blocks of a page run in order in one namespace (files land in a temporary
    directory)."""
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {"__name__": "__docs__"}
    for i, block in enumerate(_PY_BLOCK.findall(page.read_text(encoding="utf-8"))):
        exec(compile(block, f"{page.name}, python block {i}", "exec"), namespace)  # noqa: S102


def test_readme_main_loop_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """The README's example trains, and its sampled gradient agrees with the exact one."""
    blocks = _PY_BLOCK.findall((DOCS.parent / "README.md").read_text(encoding="utf-8"))
    assert len(blocks) == 1
    monkeypatch.chdir(tmp_path)
    exec(compile(blocks[0], "README.md", "exec"), {"__name__": "__readme__"})  # noqa: S102
    assert capsys.readouterr().out.splitlines()[-1] == "True"
