"""The documentation: the API reference lists every public name, the docs' cross-references
point at objects that exist, the public callables carry numpydoc sections with examples, and
those examples run (as doctests of the installed modules).

The examples assume ``import numpy as np`` and ``import pgfast as pg`` (the convention of the
docs), so the doctests run with those two names in their globals.
"""

from __future__ import annotations

import ast
import dataclasses
import doctest
import importlib
import inspect
import pkgutil
import re
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import pgfast as pg
from pgfast import envs, exact, optim, plot

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
    out += [f"pgfast.envs.{n}" for n in envs.__all__]
    out += [f"pgfast.plot.{n}" for n in plot.__all__]
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
#
# What each public docstring owes. The objects are found by introspection, so a new public name,
# method or attribute is held to the same rules without editing this file.
#
# - A *public callable* is a function or class the API reference must list (``pgfast.__all__``,
#   ``pgfast.optim.__all__``, what ``pgfast.exact`` defines), or a public method (plain, class or
#   static; name not starting with "_") of one of those classes, inherited ones included. A method
#   is listed once, under the public class that defines it (an override is its own entry). Its
#   docstring (its own, or for an override without one the docstring it inherits, which is what
#   the API reference shows) has an ``Examples`` section with at least one example; a
#   ``Parameters`` section naming every argument when it takes any (for a class, its
#   constructor's; the fields of a dataclass, whose generated constructor takes them, are named
#   in its ``Attributes`` section instead); and a ``Returns`` section when its return annotation
#   is not None (functions and methods). The examples run as doctests, in a temporary working
#   directory, with ``np`` and ``pg`` defined.
# - A *property* of those classes is a simple accessor: a summary line and a type (the return
#   annotation of its getter), no sections.
# - A *data attribute* (a dataclass field, a slot, a class-level annotation, or an attribute a
#   method of the class assigns to ``self``) is listed with its type in the ``Attributes``
#   section of its class or of a pgfast base class.

_SECTION_HEAD = re.compile(r"^(\w[\w ]*)\n(-+)$", re.M)


def _sections(doc: str) -> dict[str, str]:
    """The numpydoc sections of a docstring, title -> body (up to the next section)."""
    heads = [m for m in _SECTION_HEAD.finditer(doc) if len(m.group(2)) == len(m.group(1))]
    return {m.group(1): doc[m.end():(heads[i + 1].start() if i + 1 < len(heads) else len(doc))]
            for i, m in enumerate(heads)}


def _entries(body: str) -> dict[str, str]:
    """Names of a Parameters / Attributes section (``a, b : type`` lines at the margin) -> type."""
    out: dict[str, str] = {}
    for line in body.splitlines():
        m = re.match(r"^(\*{0,2}\w+(?:\s*,\s*\*{0,2}\w+)*)\s*(?::\s*(.*))?$", line)
        if m:
            for name in re.split(r"\s*,\s*", m.group(1)):
                out[name] = (m.group(2) or "").strip()
    return out


def _is_pgfast(cls: type) -> bool:
    return cls.__module__.split(".")[0] == "pgfast"


def _unwrap(raw: Any) -> Any:
    """The function behind a class attribute (classmethod, staticmethod, property getter)."""
    if isinstance(raw, property):
        return raw.fget
    return getattr(raw, "__func__", raw)


def _is_method(raw: Any) -> bool:
    return inspect.isfunction(raw) or isinstance(raw, (classmethod, staticmethod))


def _public_objects() -> list[tuple[str, Any]]:
    """(dotted public name, object) of every public function and class (:func:`_public_names`)."""
    objects = [(name, _resolve(name)) for name in _public_names()]
    return [(name, obj) for name, obj in objects if inspect.isfunction(obj) or inspect.isclass(obj)]


_PUBLIC_CLASSES = {obj for _, obj in _public_objects() if inspect.isclass(obj)}


def _members(cls: type) -> list[tuple[str, type, Any]]:
    """(name, defining class, raw attribute) of the public members ``cls`` defines, or inherits from
    a pgfast class that is not public itself."""
    out = []
    for name in sorted(dir(cls)):
        if name.startswith("_"):
            continue
        owner = next(k for k in cls.__mro__ if name in vars(k))
        if not _is_pgfast(owner) or (owner is not cls and owner in _PUBLIC_CLASSES):
            continue
        out.append((name, owner, vars(owner)[name]))
    return out


def _public_callables() -> dict[str, tuple[Any, type | None]]:
    """dotted public name -> (the callable, the public class it is a method of, or None)."""
    out: dict[str, tuple[Any, type | None]] = {}
    for name, obj in _public_objects():
        out[name] = (obj, None)
        if inspect.isclass(obj):
            for m, _, raw in _members(obj):
                if _is_method(raw):
                    out[f"{name}.{m}"] = (getattr(obj, m), obj)
    return out


def _public_properties() -> dict[str, property]:
    out = {}
    for name, obj in _public_objects():
        if inspect.isclass(obj):
            out.update({f"{name}.{m}": raw for m, _, raw in _members(obj) if isinstance(raw, property)})
    return out


def _doc_owner(dotted: str) -> tuple[str, str]:
    """(the doctest name of the docstring a public callable shows, that docstring, cleaned)."""
    obj, cls = _PUBLIC_CALLABLES[dotted]
    if cls is None:
        return f"{obj.__module__}.{obj.__qualname__}", inspect.cleandoc(obj.__doc__ or "")
    name = dotted.rsplit(".", 1)[1]
    for k in cls.__mro__:
        if name in vars(k) and _is_pgfast(k) and _unwrap(vars(k)[name]).__doc__:
            return f"{k.__module__}.{k.__qualname__}.{name}", inspect.cleandoc(_unwrap(vars(k)[name]).__doc__)
    return dotted, ""


_PUBLIC_CALLABLES = _public_callables()
_PUBLIC_PROPERTIES = _public_properties()

# Public callables whose docstrings do not carry the sections yet: each test of them is expected to
# fail (strict), so the marker has to go as soon as the docstring is complete.
_INCOMPLETE: dict[str, str] = {}


def _params(names: Any) -> list[Any]:
    return [pytest.param(n, marks=pytest.mark.xfail(strict=True, reason=_INCOMPLETE[n])) if n in _INCOMPLETE else n
            for n in sorted(names)]


def test_public_callables_found() -> None:
    """The introspection finds functions, classes, inherited and overriding methods, classmethods."""
    for name in ("pgfast.policy_gradient", "pgfast.FiniteMDP", "pgfast.FiniteMDP.sample",
                 "pgfast.FiniteMDP.from_gymnasium", "pgfast.SoftmaxPolicy.probs", "pgfast.TabularSoftmax.logits",
                 "pgfast.MLPSoftmax.layers", "pgfast.History.load_json", "pgfast.exact.Optimal.probs",
                 "pgfast.optim.Adam.step", "pgfast.optim.NaturalGradient.direction"):
        assert name in _PUBLIC_CALLABLES, name
    assert "pgfast.TabularSoftmax.probs" not in _PUBLIC_CALLABLES  # listed under SoftmaxPolicy
    assert "pgfast.FiniteMDP.P" in _PUBLIC_PROPERTIES and "pgfast.SoftmaxPolicy.theta" in _PUBLIC_PROPERTIES
    assert not set(_PUBLIC_CALLABLES) & set(_PUBLIC_PROPERTIES)


def _signature_names(dotted: str) -> list[str]:
    sig = inspect.signature(_PUBLIC_CALLABLES[dotted][0])
    params = list(sig.parameters.values())
    if params and params[0].name == "self":  # a plain method, taken from its class
        params = params[1:]
    prefix = {inspect.Parameter.VAR_POSITIONAL: "*", inspect.Parameter.VAR_KEYWORD: "**"}
    return [prefix.get(p.kind, "") + p.name for p in params]


@pytest.mark.parametrize("name", _params(_PUBLIC_CALLABLES))
def test_docstring_has_numpydoc_sections(name: str) -> None:
    obj = _PUBLIC_CALLABLES[name][0]
    _, doc = _doc_owner(name)
    assert doc.strip(), f"{name}: no docstring"
    sections = _sections(doc)
    assert ">>> " in sections.get("Examples", ""), f"{name}: no Examples section with an example"
    args = _signature_names(name)
    if args:
        documented = _entries(sections.get("Parameters", ""))
        if inspect.isclass(obj) and dataclasses.is_dataclass(obj):
            documented |= _entries(sections.get("Attributes", ""))
        missing = [a for a in args if a not in documented]
        assert not missing, f"{name}: Parameters does not name {missing}"
    if not inspect.isclass(obj):
        returned = inspect.signature(obj).return_annotation
        if returned not in (None, "None"):
            assert sections.get("Returns", "").strip(), f"{name}: returns {returned} but has no Returns section"


@pytest.mark.parametrize("name", sorted(_PUBLIC_PROPERTIES))
def test_property_has_summary_and_type(name: str) -> None:
    prop = _PUBLIC_PROPERTIES[name]
    doc = inspect.getdoc(prop) or ""
    assert doc.strip(), f"{name}: no summary"
    assert "return" in inspect.get_annotations(prop.fget), f"{name}: the getter has no return annotation (its type)"


def _data_attributes(cls: type) -> set[str]:
    """Public data attributes of a class: dataclass fields, slots, class-level annotations and
    attributes its (pgfast) methods assign to ``self``."""
    names: set[str] = set()
    if dataclasses.is_dataclass(cls):
        names |= {f.name for f in dataclasses.fields(cls)}
    for k in cls.__mro__:
        if not _is_pgfast(k):
            continue
        slots = vars(k).get("__slots__", ())
        names |= {slots} if isinstance(slots, str) else set(slots)
        names |= set(inspect.get_annotations(k))
        for node in ast.walk(ast.parse(textwrap.dedent(inspect.getsource(k)))):
            targets: list[ast.expr] = []
            if isinstance(node, ast.Assign):
                targets = list(node.targets)
            elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
                targets = [node.target]
            for t in targets:
                for e in ast.walk(t):
                    if isinstance(e, ast.Attribute) and isinstance(e.value, ast.Name) and e.value.id == "self":
                        names.add(e.attr)

    def accessor(n: str) -> bool:  # a method or property (``self.theta = x`` goes through a setter)
        raw = inspect.getattr_static(cls, n, None)
        return _is_method(raw) or isinstance(raw, property)

    return {n for n in names if not n.startswith("_") and not accessor(n)}


_CLASSES_WITH_DATA = {name: obj for name, obj in _public_objects() if inspect.isclass(obj) and _data_attributes(obj)}


def test_data_attributes_found() -> None:
    assert {"grad", "stderr", "ess"} <= _data_attributes(pg.PolicyGradient)  # dataclass fields
    assert {"states", "mdp", "seed"} <= _data_attributes(pg.Trajectories)  # slots
    assert {"lr", "m", "v", "t"} <= _data_attributes(optim.Adam)  # assigned in methods, annotated on the base
    assert {"n_states", "ridge"} <= _data_attributes(pg.ValueBaseline)
    assert "theta" not in _data_attributes(pg.TabularSoftmax)  # a property, assigned through its setter


@pytest.mark.parametrize("name", _params(_CLASSES_WITH_DATA))
def test_data_attributes_documented(name: str) -> None:
    cls = _CLASSES_WITH_DATA[name]
    documented: dict[str, str] = {}
    for k in reversed(cls.__mro__):
        if _is_pgfast(k):
            documented |= _entries(_sections(inspect.getdoc(k) if k.__doc__ else "").get("Attributes", ""))
    missing = sorted(_data_attributes(cls) - set(documented))
    assert not missing, f"{name}: the Attributes section does not list {missing}"
    untyped = sorted(n for n in _data_attributes(cls) if not documented[n])
    assert not untyped, f"{name}: the Attributes section gives no type for {untyped}"


def _all_modules() -> list[Any]:
    """Every module of the installed package (the command-line entry point aside)."""
    names = {m.name for m in pkgutil.walk_packages(pg.__path__, "pgfast.")} - {"pgfast.__main__"}
    return [pg] + [importlib.import_module(n) for n in sorted(names)]


def _all_docstrings() -> list[tuple[str, str]]:
    """(dotted name, docstring) of every module, and every function, class and class member
    (private ones included) defined in one."""
    out = []
    for mod in _all_modules():
        out.append((mod.__name__, mod.__doc__ or ""))
        for name, obj in vars(mod).items():
            if getattr(obj, "__module__", None) != mod.__name__ or not (inspect.isfunction(obj) or inspect.isclass(obj)):
                continue
            out.append((f"{mod.__name__}.{name}", obj.__doc__ or ""))
            if inspect.isclass(obj):
                out += [(f"{mod.__name__}.{name}.{m}", getattr(_unwrap(v), "__doc__", None) or "")
                        for m, v in vars(obj).items() if _is_method(v) or isinstance(v, property)]
    return out


def test_docstrings_do_not_cite_sources_the_user_lacks() -> None:
    """Docstrings cite the docs' theory page, not internal notes or tracker numbers."""
    bad = re.compile(
        r"\bseeds?\s*/?\s*0\d\d\b|\bseeds'|\bseed files?\b"  # the theory's source notes: "seed 000", "the seeds'"
        r"|\bissue\s*#?\d+|\bthe (?:\w+ )?issue\b|(?<![\w&])#\d+\b"  # the tracker: "issue 17", "the benchmark issue", "#12"
        r"|\bsection \d+(?:\.\d+)+",  # numbered sections of either: "section 4.5"
        re.I,
    )
    offenders = [f"{name}: {m.group(0)!r}" for name, doc in _all_docstrings() for m in [bad.search(doc)] if m]
    assert not offenders, offenders


def test_theory_citations_name_its_headings() -> None:
    """``:doc:`/theory`, "Heading"`` in a docstring names a heading of the theory page."""
    text = (DOCS / "theory.md").read_text(encoding="utf-8")
    headings = {h.strip() for h in re.findall(r"^#+ (.+)$", text, re.M)}
    cited = re.compile(r':doc:`/theory`,((?:\s*(?:,|and)?\s*"[^"]+")+)')  # one heading, or a list of them
    quoted = [(name, " ".join(h.split())) for name, doc in _all_docstrings() for run in cited.findall(doc)
              for h in re.findall(r'"([^"]+)"', run)]
    assert len(quoted) >= 10, "the theory citations were not found"
    wrong = sorted({f"{name}: {h!r}" for name, h in quoted if h not in headings})
    assert not wrong, f"not headings of docs/theory.md: {wrong}"


def _doctest_modules() -> list[Any]:
    """pgfast, pgfast.exact, pgfast.optim and the modules defining the public names and their bases."""
    names = {"pgfast", "pgfast.exact", "pgfast.optim"}
    for _, obj in _public_objects():
        owners = [k for k in obj.__mro__ if _is_pgfast(k)] if inspect.isclass(obj) else [obj]
        names |= {o.__module__ for o in owners}
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


@pytest.mark.parametrize("name", _params(_PUBLIC_CALLABLES))
def test_public_callable_examples_are_collected(name: str) -> None:
    """The docstring each public callable shows has a doctest among those the suite runs."""
    owner, _ = _doc_owner(name)
    assert owner in {t.name for t in _DOCTESTS}, f"{name}: no doctest collected for {owner}"


@pytest.mark.parametrize("test", _DOCTESTS, ids=lambda t: t.name)
def test_docstring_examples_run(test: doctest.DocTest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # examples that save files write them here
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
