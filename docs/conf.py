"""Sphinx configuration of the pgfast documentation (MyST Markdown pages, numpydoc docstrings).

Build: ``sphinx-build -W --keep-going -b html docs /tmp/docs-html`` (the package must be
installed: the API reference is generated from the installed modules' docstrings).
"""

from __future__ import annotations

from importlib import metadata

project = "pgfast"
author = "pgfast contributors"
copyright = "pgfast contributors"
try:
    release = metadata.version("pgfast")
except metadata.PackageNotFoundError:  # pragma: no cover - docs built without the package installed
    release = "0+unknown"

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx_gallery.gen_gallery",
]

# MyST Markdown pages; the gallery's pages are reStructuredText that sphinx-gallery writes
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build"]

myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3

# numpydoc-style sections (Parameters, Returns, Raises, Examples) through napoleon
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
napoleon_use_ivar = True

autodoc_default_options = {"members": True, "undoc-members": False, "show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_format = "short"
# type hints name NumPy aliases that are not documented here; do not try to cross-reference them
nitpicky = False
# several policy classes have an ``n_params`` (SoftmaxPolicy, LinearGaussian, ...): a type such as
# "(N, n_params)" in a docstring matches each of them, which is no error
suppress_warnings = ["ref.python"]

# The gallery: each examples/plot_*.py runs during the build (a failing script, or one whose
# assertions fail, fails the build) and becomes a page of docs/gallery/ with its figures.
sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "gallery",
    "filename_pattern": r"/plot_",
    "within_subsection_order": "FileNameSortKey",
    "download_all_examples": False,
    "show_signature": False,
    "min_reported_time": float("inf"),
    "write_computation_times": False,
}


html_theme = "furo"
html_title = f"pgfast {release}"
