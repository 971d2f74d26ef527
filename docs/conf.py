"""Sphinx configuration of the geoconv site (``sphinx-build -W -b html docs docs/_build/html``).

Nothing here reaches the network: no intersphinx, a bundled theme, MathJax loaded by the
reader's browser. The package is imported from the installed (editable) distribution.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import geoconv

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))  # the two small local extensions below

# Figures are drawn off screen; keep torch to the cores we were given.
os.environ.setdefault("MPLBACKEND", "Agg")

# -- project -------------------------------------------------------------------------------

project = "geoconv"
author = "The geoconv developers"
copyright = "the geoconv developers"
version = geoconv.__version__
release = geoconv.__version__

# -- extensions ----------------------------------------------------------------------------

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "matplotlib.sphinxext.plot_directive",
    "numpydoc_sections",  # _ext/: keeps geoconv's own docstring sections ("Shapes", ...)
    "runblock",  # _ext/: ``.. runblock::`` executes Python at build time, shows its output
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
root_doc = "index"
nitpicky = False

# -- autodoc / autosummary -----------------------------------------------------------------

autosummary_generate = True
autosummary_imported_members = False
autosummary_ignore_module_all = False  # the tables follow each module's __all__
autodoc_typehints = "none"  # the numpy docstrings carry the types; signatures stay short
autodoc_member_order = "bysource"
autodoc_default_options = {"show-inheritance": True}
autoclass_content = "class"
# Methods that override Lightning's (training_step, ...) would otherwise show Lightning's own
# docstrings, written for Lightning's site (its roles, its labels); document only geoconv's.
autodoc_inherit_docstrings = False


# The API pages: each page documents the names in its module's ``__all__``; a package page
# also lists the public modules that get pages of their own. Private modules (a leading
# underscore) get none. An object re-exported on several pages is documented once, under its
# most public name (``geoconv.build_op`` rather than ``geoconv.ops.registry.build_op``), and the
# other pages' summary tables link there.
def _in(package: str, names: str) -> list[str]:
    return [f"{package}.{name}" for name in names.split()]


API_TREE: dict[str, list[str]] = {
    "geoconv": _in("geoconv", "errors sizes registry cli"),
    "geoconv.grids": _in(
        "geoconv.grids", "registry base planar equirect cubemap healpix sphere fields conversion rotation"
    ),
    "geoconv.ops": _in("geoconv.ops", "registry disco"),
    "geoconv.nn": _in("geoconv.nn", "build models"),
    "geoconv.data": _in("geoconv.data", "registry synthetic cache"),
    "geoconv.probes": [],
    "geoconv.training": _in("geoconv.training", "engine checkpoints runs batchnorm logs"),
    "geoconv.testing": [],
    "geoconv.viz": [],
    "geoconv.experiment": _in("geoconv.experiment", "main config runner sweep report stats summary table jobs"),
    "geoconv.experiment.jobs": _in("geoconv.experiment.jobs", "registry shift locality rotation suite train benchmark"),
}
"""Top-level API pages (the keys not listed as another page's module) and their modules."""


def _relative(name: str, page: str) -> str:
    # autosummary resolves names against the page's module, and refuses to be given that
    # module's own prefix (it takes it for an import cycle).
    return name.removeprefix(f"{page}.")


def _api_pages() -> dict[str, dict[str, list[str]]]:
    import importlib
    import inspect

    tree = {page: list(modules) for page, modules in API_TREE.items()}

    def pages_in_order() -> list[str]:
        return [*tree, *(m for modules in tree.values() for m in modules if m not in tree)]

    def depth_order(names: list[str]) -> list[str]:
        return sorted(names, key=lambda name: (name.count("."), names.index(name)))

    def survey() -> tuple[dict[str, list[tuple[str, object]]], dict[int, tuple[str, str]]]:
        exported: dict[str, list[tuple[str, object]]] = {}
        home: dict[int, tuple[str, str]] = {}
        for page in depth_order(pages_in_order()):
            module = importlib.import_module(page)
            names = []
            for name in getattr(module, "__all__", []):
                obj = getattr(module, name)
                if not (inspect.isclass(obj) or inspect.isroutine(obj)):
                    continue  # data are documented where their docstring is; modules on their own page
                names.append((name, obj))
                # autodoc finds a module's members through dir(): a name that a package only
                # loads lazily (its __getattr__) is documented on the page of the module
                # that holds it.
                if name in dir(module):
                    home.setdefault(id(obj), (page, name))
            exported[page] = names
        return exported, home

    exported, home = survey()
    # A lazily exported name whose module has no page yet: that module gets one, listed
    # under the package that exports the name.
    added = False
    for page in pages_in_order():
        for _name, obj in exported[page]:
            source = getattr(obj, "__module__", "") or ""
            if id(obj) in home or any(part.startswith("_") for part in source.split(".")):
                continue
            if source.startswith("geoconv.") and source not in pages_in_order():
                tree.setdefault(page, []).append(source)
                added = True
    if added:
        exported, home = survey()
    orphans = [f"{page}.{name}" for page in pages_in_order() for name, obj in exported[page] if id(obj) not in home]
    if orphans:
        raise RuntimeError(f"public API names that no page documents (see API_TREE in docs/conf.py): {orphans}")

    pages = {}
    for page in pages_in_order():
        summary, exclude = [], []
        for name, obj in exported[page]:
            where, canonical = home[id(obj)]
            if where == page:
                summary.append(name)
            else:
                summary.append("~" + _relative(f"{where}.{canonical}", page))
                exclude.append(name)
        modules = [_relative(module, page) for module in tree.get(page, [])]
        pages[page] = {"summary": summary, "exclude": exclude, "modules": modules}
    return pages


autosummary_context = {"api": _api_pages()}

# -- numpydoc ------------------------------------------------------------------------------

numpydoc_show_class_members = False  # autodoc documents the members; no second table
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = True
numpydoc_xref_param_type = False

# -- matplotlib's plot directive -----------------------------------------------------------

plot_include_source = False  # each ``.. plot::`` says whether its code is shown
plot_html_show_source_link = False
plot_html_show_formats = False
plot_formats = [("png", 110)]
plot_rcparams = {"figure.dpi": 110, "savefig.bbox": "tight", "font.size": 9}
plot_apply_rcparams = True
plot_pre_code = "import numpy as np\nimport matplotlib.pyplot as plt\nimport torch\ntorch.set_num_threads(2)\n"

# -- HTML ----------------------------------------------------------------------------------

html_theme = "alabaster"
html_title = f"geoconv {version}"
html_static_path: list[str] = []
html_theme_options = {
    "description": "Convolution operators on the plane and on the sphere, behind one registry.",
    "page_width": "1100px",
    "sidebar_width": "230px",
    "fixed_sidebar": False,
    "show_relbars": True,
}
html_sidebars = {"**": ["about.html", "navigation.html", "relations.html", "searchbox.html"]}
html_show_sourcelink = False

# -- warnings ------------------------------------------------------------------------------

suppress_warnings: list[str] = []
