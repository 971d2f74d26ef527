"""Grid plugins installed the way an installer lays them out, and the grid registry restored afterwards.

:func:`install_example` writes the example grid plugin (``examples/geoconv-example-grid-plugin``)
into a temporary site directory: its package beside ``NAME-VERSION.dist-info/`` with
``METADATA`` and an ``entry_points.txt`` declaring the ``geoconv.grids`` group. With the
directory on ``sys.path``, :mod:`importlib.metadata` finds it, and the grid registry loads
it as it would a pip-installed distribution. No network, nothing installed into the
environment.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from geoconv.grids import list_grids, unregister_grid
from geoconv.grids.registry import GRIDS

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "geoconv-example-grid-plugin"
EXAMPLE_DIST = "geoconv-example-grid-plugin"
EXAMPLE_VERSION = "0.1.0"
EXAMPLE_PACKAGE = "geoconv_example_grid_plugin"
EXAMPLE_GRID = "torus"


def write_distribution(
    site: Path, name: str, entry_points: dict[str, str], version: str = "0.1.0", group: str = "geoconv.grids"
) -> Path:
    """Write ``NAME-VERSION.dist-info`` with METADATA and an entry_points.txt for ``group``."""
    dist_info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n", encoding="utf-8")
    lines = "".join(f"{key} = {value}\n" for key, value in entry_points.items())
    (dist_info / "entry_points.txt").write_text(f"[{group}]\n{lines}", encoding="utf-8")
    return dist_info


def install_example(site: Path) -> None:
    """Lay the example grid plugin out in ``site`` as pip would: its package and its dist-info."""
    shutil.copytree(EXAMPLE / EXAMPLE_PACKAGE, site / EXAMPLE_PACKAGE, ignore=shutil.ignore_patterns("__pycache__"))
    write_distribution(site, EXAMPLE_DIST, {EXAMPLE_GRID: EXAMPLE_PACKAGE}, EXAMPLE_VERSION)


@pytest.fixture
def grid_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A fresh site directory on ``sys.path``; the grid registry, ``sys.modules`` and Hydra's store are restored."""
    before = {name: GRIDS.get(name) for name in list_grids()}  # also loads the environment's plugins first
    modules_before = set(sys.modules)
    directory = tmp_path / "site-packages"
    directory.mkdir()
    monkeypatch.syspath_prepend(str(directory))
    yield directory
    monkeypatch.undo()
    for name in list_grids():
        if name not in before:
            unregister_grid(name)
    for module in set(sys.modules) - modules_before:
        if str(tmp_path) in str(getattr(sys.modules[module], "__file__", "") or ""):
            del sys.modules[module]
    GRIDS.load_plugins(reload=True)
    _forget_hydra_grids(set(list_grids()))
    assert sorted(before) == list_grids()
    replaced = [name for name, grid in before.items() if GRIDS.get(name) is not grid]
    assert not replaced, f"a test replaced registered grids: {replaced}"


@pytest.fixture
def torus(grid_site: Path):
    """The example plugin's torus grid, installed in ``grid_site`` and loaded through its entry point."""
    from geoconv.grids import get_grid

    install_example(grid_site)
    GRIDS.load_plugins(reload=True)
    return get_grid(EXAMPLE_GRID)


def _forget_hydra_grids(keep: set[str]) -> None:
    """Drop ConfigStore grid nodes of grids no longer registered (a test's plugin grid)."""
    from hydra.core.config_store import ConfigStore

    group = ConfigStore.instance().repo.get("grid", {})
    for key in [key for key in group if key.endswith(".yaml") and key[: -len(".yaml")] not in keep]:
        del group[key]
