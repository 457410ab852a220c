"""The gallery of the docs: each ``examples/plot_*.py`` runs (matplotlib's Agg backend) and
reproduces its result. The scripts assert what they reproduce, so running one is its test; the
docs build runs them again through sphinx-gallery."""

from __future__ import annotations

import ast
import re
import runpy
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SCRIPTS = sorted(EXAMPLES.glob("plot_*.py"))


def test_gallery_scripts_found() -> None:
    assert {p.stem for p in SCRIPTS} == {
        "plot_baseline_variance",
        "plot_chain_escape",
        "plot_entropy_linear_rate",
        "plot_polytope_paths",
        "plot_short_corridor",
    }
    assert (EXAMPLES / "GALLERY_HEADER.rst").is_file()


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_gallery_script_has_header(script: Path) -> None:
    """A title underlined with "=" (the page's title), then the result and its source (a year)."""
    doc = ast.get_docstring(ast.parse(script.read_text(encoding="utf-8"))) or ""
    lines = doc.splitlines()
    assert len(lines) > 3 and lines[1] == "=" * len(lines[0]), f"{script.name}: no underlined title"
    assert re.search(r"\b(?:19|20)\d\d\b", doc), f"{script.name}: the header cites no source"


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_gallery_script_runs(script: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    plt.close("all")
    try:
        runpy.run_path(str(script), run_name="__main__")
        figures = [plt.figure(n) for n in plt.get_fignums()]
        assert figures, f"{script.name} draws no figure"
        for i, fig in enumerate(figures):
            assert fig.axes and all(ax.has_data() for ax in fig.axes), f"{script.name}: figure {i} has an empty axes"
            out = tmp_path / f"{script.stem}_{i}.png"
            fig.savefig(out)
            assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    finally:
        plt.close("all")
