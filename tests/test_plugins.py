"""Plugins are found through real distribution metadata, and a bad plugin never breaks the rest.

Each test writes distributions into a temporary directory the way an installer lays them
out (a package next to ``NAME-VERSION.dist-info/`` with ``METADATA`` and
``entry_points.txt``), puts the directory on ``sys.path`` and lets the registries find
them through :mod:`importlib.metadata`. No network, nothing installed into the
environment. The slow test really ``pip install``s the example plugin into a temporary
target directory. The suite must also pass where plugins *are* installed: the tests here
hide an installed copy of the example while they lay out their own, and one test runs the
README and plugin tests in a subprocess with the example (and a grid plugin) on the path.

The one registry pattern holds for every entry-point group (ops, grids, models, probe
inputs, jobs): a plugin loads, a failing one warns, a taken name is refused, an unknown
name gets did-you-mean. ``test_registry_pattern.py`` tests the Registry class itself.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from geoconv._registry import Registry
from geoconv.cli import main
from geoconv.data.synthetic import INPUTS, make_input
from geoconv.errors import ParameterError, RegistryError, UnknownNameError
from geoconv.experiment.jobs.registry import JOBS, get_job
from geoconv.grids.registry import GRIDS, get_grid
from geoconv.nn.build import MODELS, build_model
from geoconv.ops.registry import OPS, PluginWarning, build_op, get_op, list_ops, load_plugins
from geoconv.sizes import Layer
from geoconv.testing import assert_op_contract

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "geoconv-example-plugin"
EXAMPLE_DIST = "geoconv-example-plugin"
EXAMPLE_VERSION = "0.1.0"
EXAMPLE_PACKAGE = "geoconv_example_plugin"
EXAMPLE_OP = "example_laplacian"

# Every entry-point group geoconv reads, and the registry it fills.
GROUPS = ("geoconv.ops", "geoconv.grids", "geoconv.models", "geoconv.inputs", "geoconv.jobs")
REGISTRIES: dict[str, Registry] = dict(zip(GROUPS, (OPS, GRIDS, MODELS, INPUTS, JOBS), strict=True))


def write_distribution(
    site: Path, name: str, entry_points: dict[str, str], version: str = "0.1.0", group: str = "geoconv.ops"
) -> Path:
    """Write ``NAME-VERSION.dist-info`` with METADATA and an entry_points.txt declaring ``group``."""
    dist_info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n", encoding="utf-8")
    lines = "".join(f"{key} = {value}\n" for key, value in entry_points.items())
    (dist_info / "entry_points.txt").write_text(f"[{group}]\n{lines}", encoding="utf-8")
    return dist_info


def lay_out_example(site: Path) -> None:
    """Lay the example plugin out in ``site`` as pip would: its package and its dist-info."""
    shutil.copytree(EXAMPLE / EXAMPLE_PACKAGE, site / EXAMPLE_PACKAGE, ignore=shutil.ignore_patterns("__pycache__"))
    write_distribution(site, EXAMPLE_DIST, {"example": EXAMPLE_PACKAGE}, EXAMPLE_VERSION)


def install_example(site: Path) -> None:
    """:func:`lay_out_example`, first hiding a copy of the example installed in the environment.

    An installed copy would already be imported and registered, so the copy in ``site``
    would never be loaded. The ``site`` fixture puts the installed copy back afterwards.
    ``site`` is first on ``sys.path``, so :mod:`importlib.metadata` sees its dist-info
    before the installed one (distributions are unique by name, first found wins).
    """
    for name in OPS.names():
        if OPS.source(name) == EXAMPLE_DIST:
            OPS.unregister(name)
    for module in [m for m in sys.modules if m == EXAMPLE_PACKAGE or m.startswith(EXAMPLE_PACKAGE + ".")]:
        del sys.modules[module]
    lay_out_example(site)


def snapshot(registry: Registry) -> dict[str, tuple[str, object]]:
    """Name -> (source, entry) of everything ``registry`` holds now."""
    return {name: (registry.source(name), registry.get(name)) for name in registry.names()}


def restore(registry: Registry, before: dict[str, tuple[str, object]]) -> list[str]:
    """Put ``registry`` back to ``before``; return the built-in names a test had replaced.

    A plugin's entry may be replaced on purpose (:func:`install_example` swaps an installed
    copy of the example for the one under test); geoconv's own entries never may.
    """
    replaced = []
    for name in registry.names():
        if name not in before:
            registry.unregister(name)
    for name, (source, entry) in before.items():
        current = registry.get(name, None)
        if current is entry:
            continue
        if current is not None and source == "geoconv":
            replaced.append(name)
        with registry.registering_as(source):
            registry.register(name, entry, override=True)
    return replaced


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh directory on ``sys.path``; the registries and ``sys.modules`` are restored afterwards."""
    before = {group: snapshot(registry) for group, registry in REGISTRIES.items()}  # loads installed plugins first
    modules_before = dict(sys.modules)
    directory = tmp_path / "site-packages"
    directory.mkdir()
    monkeypatch.syspath_prepend(str(directory))
    yield directory
    monkeypatch.undo()
    for module in set(sys.modules) - set(modules_before):
        if str(tmp_path) in str(getattr(sys.modules[module], "__file__", "") or ""):
            del sys.modules[module]
    for module, value in modules_before.items():
        sys.modules.setdefault(module, value)  # the installed copies install_example hid
    replaced = {group: restore(registry, before[group]) for group, registry in REGISTRIES.items()}
    assert not any(replaced.values()), f"a test replaced registered entries: {replaced}"


def plugin_env(site: Path) -> dict[str, str]:
    """The environment of a subprocess in which the distributions in ``site`` are installed."""
    path = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, "COLUMNS": "300"}


def _padded(x: torch.Tensor, mode: str) -> torch.Tensor:
    """Pad H and W by one pixel with plain indexing, independently of torch's F.pad."""
    h, w = x.shape[-2:]
    rows, cols = torch.arange(-1, h + 1), torch.arange(-1, w + 1)
    if mode == "zeros":
        out = x.new_zeros(*x.shape[:-2], h + 2, w + 2)
        out[..., 1:-1, 1:-1] = x
        return out
    if mode == "circular":
        rows, cols = rows % h, cols % w
    elif mode == "replicate":
        rows, cols = rows.clamp(0, h - 1), cols.clamp(0, w - 1)
    elif mode == "reflect":
        rows = torch.where(rows < 0, -rows, torch.where(rows >= h, 2 * (h - 1) - rows, rows))
        cols = torch.where(cols < 0, -cols, torch.where(cols >= w, 2 * (w - 1) - cols, cols))
    return x[..., rows, :][..., cols]


def reference_laplacian(x: torch.Tensor, stencil: str, spacing: float, mode: str) -> torch.Tensor:
    """The textbook finite-difference formulas, written with shifted slices."""
    p = _padded(x, mode)
    centre = p[..., 1:-1, 1:-1]
    edges = p[..., :-2, 1:-1] + p[..., 2:, 1:-1] + p[..., 1:-1, :-2] + p[..., 1:-1, 2:]
    if stencil == "5-point":
        return (edges - 4 * centre) / spacing**2
    corners = p[..., :-2, :-2] + p[..., :-2, 2:] + p[..., 2:, :-2] + p[..., 2:, 2:]
    return (4 * edges + corners - 20 * centre) / (6 * spacing**2)


def test_example_plugin_is_discovered_through_distribution_metadata(site: Path) -> None:
    install_example(site)
    assert EXAMPLE_OP not in list_ops()  # plugins load once; a new distribution needs a reload
    loaded = load_plugins(reload=True)
    assert "example" in loaded
    spec = get_op(EXAMPLE_OP)
    assert spec.source == EXAMPLE_DIST
    assert EXAMPLE_OP in list_ops()
    assert EXAMPLE_OP in list_ops("example_*", grid="planar")
    assert spec.grids == ("planar",)
    assert spec.same_channels
    assert spec.summary.startswith("Discrete Laplacian")
    assert [p.name for p in spec.parameters()] == ["stencil", "spacing", "padding_mode"]
    assert Path(sys.modules[EXAMPLE_PACKAGE].__file__).is_relative_to(site)


@pytest.mark.parametrize("stencil", ["5-point", "9-point"])
@pytest.mark.parametrize("mode", ["zeros", "replicate", "reflect", "circular"])
def test_example_op_matches_the_finite_difference_formula(site: Path, stencil: str, mode: str) -> None:
    install_example(site)
    load_plugins(reload=True)
    op = build_op(EXAMPLE_OP, 3, stencil=stencil, spacing=0.5, padding_mode=mode).double()
    x = torch.randn(2, 3, 7, 9, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    y = op(x)
    assert y.shape == x.shape
    torch.testing.assert_close(y, reference_laplacian(x, stencil, 0.5, mode), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("stencil", ["5-point", "9-point"])
def test_example_op_is_exact_for_quadratics(site: Path, stencil: str) -> None:
    install_example(site)
    load_plugins(reload=True)
    h = 0.25
    i, j = torch.meshgrid(torch.arange(8.0, dtype=torch.float64), torch.arange(8.0, dtype=torch.float64), indexing="ij")
    u, v = h * i, h * j
    field = 1.5 * u**2 - 0.5 * v**2 + 2.0 * u * v + 3.0 * u - v + 7.0  # Δ = 2·1.5 − 2·0.5 = 2
    op = build_op(EXAMPLE_OP, 1, stencil=stencil, spacing=h).double()
    interior = op(field[None, None])[0, 0, 1:-1, 1:-1]
    torch.testing.assert_close(interior, torch.full_like(interior, 2.0), rtol=0, atol=1e-10)


def test_example_op_rejects_bad_input_with_geoconv_errors(site: Path) -> None:
    from geoconv.errors import GeoconvError, ParameterError, ShapeError, UnknownNameError

    install_example(site)
    load_plugins(reload=True)
    with pytest.raises(GeoconvError, match="stencil"):
        build_op(EXAMPLE_OP, 1, stencil="7-point")
    with pytest.raises(ParameterError, match="spacing"):
        build_op(EXAMPLE_OP, 1, spacing=0.0)
    with pytest.raises(ParameterError, match="out_channels"):
        build_op(EXAMPLE_OP, 1, 2)
    with pytest.raises(UnknownNameError, match="grid"):
        build_op(EXAMPLE_OP, 1, grid="healpix")
    op = build_op(EXAMPLE_OP, 2, padding_mode="reflect")
    with pytest.raises(ShapeError, match=r"\(B, 2, H, W\)"):
        op(torch.zeros(1, 3, 4, 4))
    with pytest.raises(ShapeError, match="H, W >= 2"):
        op(torch.zeros(1, 2, 1, 4))


def test_cli_shows_plugin_ops_with_their_source(
    site: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    install_example(site)
    load_plugins(reload=True)
    monkeypatch.setenv("COLUMNS", "300")
    assert main(["ops"]) == 0
    table = capsys.readouterr().out
    assert "SOURCE" in table.splitlines()[0]
    row = next(line for line in table.splitlines() if line.startswith(EXAMPLE_OP + " "))
    assert EXAMPLE_DIST in row
    assert "stencil='5-point', spacing=1.0, padding_mode='replicate'" in row
    conv_row = next(line for line in table.splitlines() if line.startswith("conv "))
    assert EXAMPLE_DIST not in conv_row
    assert main(["ops", EXAMPLE_OP]) == 0
    detail = capsys.readouterr().out
    assert f"source:   {EXAMPLE_DIST}" in detail
    assert "The grid spacing h (> 0); the stencil is divided by h²." in detail


def test_a_plugin_that_fails_to_import_warns_and_the_rest_work(site: Path) -> None:
    install_example(site)
    (site / "broken_geoconv_plugin.py").write_text('raise RuntimeError("broken on purpose")\n', encoding="utf-8")
    write_distribution(site, "geoconv-broken-plugin", {"broken": "broken_geoconv_plugin"})
    with pytest.warns(PluginWarning) as record:
        loaded = load_plugins(reload=True)
    # Only this test's broken plugin: a broken plugin installed in the environment is not ours to judge.
    messages = [
        str(w.message) for w in record if issubclass(w.category, PluginWarning) and "'broken'" in str(w.message)
    ]
    assert len(messages) == 1
    message = messages[0]
    for needle in ("'broken'", "broken_geoconv_plugin", "geoconv-broken-plugin", "RuntimeError", "broken on purpose"):
        assert needle in message
    assert "broken" not in loaded
    assert "example" in loaded  # another plugin is unaffected
    assert get_op(EXAMPLE_OP).source == EXAMPLE_DIST
    conv = build_op("conv", 2, 3, kernel_size=3)
    assert conv(torch.randn(1, 2, 5, 5)).shape == (1, 3, 5, 5)


# A plugin reusing a built-in name (conv, planar, ...) is tested for every group below.


def test_an_entry_point_may_name_a_registering_function(site: Path) -> None:
    source = (
        SCALE_OP
        + 'def register():\n    register_op("function_plugin_scale", config=Config, same_channels=True)(Scale)\n'
    )
    (site / "function_geoconv_plugin.py").write_text(source, encoding="utf-8")
    write_distribution(site, "geoconv-function-plugin", {"scale": "function_geoconv_plugin:register"})
    assert "scale" in load_plugins(reload=True)
    assert get_op("function_plugin_scale").source == "geoconv-function-plugin"
    x = torch.randn(1, 1, 3, 3)
    torch.testing.assert_close(build_op("function_plugin_scale", 1, factor=3.0)(x), 3.0 * x)


@pytest.mark.parametrize("mode", ["zeros", "replicate", "reflect", "circular"])
def test_example_op_keeps_the_op_contract(site: Path, mode: str) -> None:
    install_example(site)
    load_plugins(reload=True)
    # A stencil is linear in x, whatever lies beyond the border (each mode copies or zeroes pixels).
    assert_op_contract(EXAMPLE_OP, "planar", affine=True, params={"padding_mode": mode, "stencil": "9-point"})


def test_example_op_describes_its_layers(site: Path) -> None:
    install_example(site)
    load_plugins(reload=True)
    op = build_op(EXAMPLE_OP, 2, stencil="9-point", padding_mode="reflect")
    one_stencil = [Layer(kernel_size=3, stride=1, padding=1, dilation=1)]  # 3x3, one pixel of padding per side
    assert op.layers() == one_stencil
    assert op.layers(input_size=(7, 9), axis=-2) == one_stencil
    with pytest.raises(ParameterError, match="axis"):
        op.layers(axis=0)


def test_locality_probe_reads_the_example_ops_layers(site: Path) -> None:
    """Needs ``geoconv.probes.locality.layers_of`` to ask ops for ``layers()`` (issue 11, item 3)."""
    from geoconv.probes.locality import layers_of

    install_example(site)
    load_plugins(reload=True)
    model = torch.nn.Sequential(build_op(EXAMPLE_OP, 1), torch.nn.Identity(), build_op(EXAMPLE_OP, 1))
    assert layers_of(model, (9, 9)) == [Layer(kernel_size=3, stride=1, padding=1, dilation=1)] * 2


def test_example_op_goes_through_the_locality_experiment(tmp_path: Path) -> None:
    site = tmp_path / "site-packages"
    site.mkdir()
    lay_out_example(site)
    run_dir = tmp_path / "run"
    overrides = f"experiment=locality op={EXAMPLE_OP} grid.size=16 model.depth=2 job.depths=[1,2] job.kernel_sizes=[3]"
    overrides += f" job.dilations=[1] job.strides=[1] job.inits=1 job.inputs=1 hydra.run.dir={run_dir}"
    command = [sys.executable, "experiments/run.py", *overrides.split()]
    run = subprocess.run(command, cwd=ROOT, env=plugin_env(site), capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    result = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    assert result["config"]["op"]["name"] == EXAMPLE_OP
    metrics = result["metrics"]
    # Two 3x3 stencils of stride 1: r = 1 + sum_l (k_l - 1) = 1 + 2 * 2 = 5 (Araujo et al. 2019).
    assert metrics["rf/theoretical"] == 5
    # The Laplacian's weights are all nonzero along the centre row, so the gradient reaches all 5 pixels.
    assert metrics["rf/gradient_support"] == 5


SCALE_OP = """\
from dataclasses import dataclass
import torch
from geoconv import register_op

@dataclass
class Config:
    factor: float = 2.0

class Scale(torch.nn.Module):
    '''Multiply by a constant.'''
    def __init__(self, in_channels, out_channels, grid="planar", config=None):
        super().__init__()
        self.factor = config.factor
    def forward(self, x):
        return self.factor * x

"""

GRID_PLUGIN = """\
from geoconv.grids import register_grid
from geoconv.grids.planar import PlanarGrid


class PluginPlane(PlanarGrid):
    \"\"\"The plane under another name: a grid a plugin added.\"\"\"

    name = "plugin_plane"


register_grid("plugin_plane", PluginPlane)
"""


def test_the_suite_passes_with_plugins_installed(tmp_path: Path) -> None:
    """Bug h: installing the example plugin (or a grid plugin) broke the README and plugin tests."""
    site = tmp_path / "site-packages"
    site.mkdir()
    lay_out_example(site)
    (site / "plugin_plane_grid.py").write_text(GRID_PLUGIN, encoding="utf-8")
    write_distribution(site, "geoconv-plugin-plane", {"plane": "plugin_plane_grid"}, group="geoconv.grids")
    tests = [
        "tests/test_readme.py::test_ops_table_is_the_cli_output",
        "tests/test_readme.py::test_hiding_plugins_puts_every_entry_back_as_it_was",
        "tests/test_plugins.py::test_example_plugin_is_discovered_through_distribution_metadata",
        "tests/test_plugins.py::test_example_op_matches_the_finite_difference_formula",
        "tests/test_plugins.py::test_a_plugin_that_fails_to_import_warns_and_the_rest_work",
    ]
    script = (
        "import sys, pytest, geoconv\n"
        "from geoconv.grids import list_grids\n"
        # The plugins really are installed in this process: the tests below must pass anyway.
        f"assert geoconv.get_op({EXAMPLE_OP!r}).source == {EXAMPLE_DIST!r}, geoconv.list_ops()\n"
        "assert 'plugin_plane' in geoconv.get_op('conv').grids, list_grids()\n"
        f"sys.exit(pytest.main(['-q', '-p', 'no:cacheprovider', *{tests!r}]))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=plugin_env(site), capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    assert " passed" in run.stdout and "failed" not in run.stdout


# -- one registry pattern for every extension point ----------------------------------------

# Per entry-point group: a plugin module registering NAME.
GROUP_PLUGINS = {
    "geoconv.ops": SCALE_OP + 'register_op("NAME", config=Config, same_channels=True)(Scale)\n',
    "geoconv.grids": GRID_PLUGIN.replace("plugin_plane", "NAME"),
    "geoconv.models": """\
import torch
from geoconv.nn.build import register_model

class Received(torch.nn.Identity):
    def __init__(self, **received):
        super().__init__()
        self.received = received

register_model("NAME")(Received)
""",
    "geoconv.inputs": """\
import torch
from geoconv.data.synthetic import INPUTS, make_input
from geoconv.grids import get_grid

def ramp(data, grid, generator):
    shape = get_grid(grid["name"]).shape(data["batch"], data["channels"], grid["size"])
    return torch.arange(float(torch.Size(shape).numel())).reshape(shape)

INPUTS.register("NAME", ramp)
""",
    "geoconv.jobs": """\
from geoconv.experiment.jobs.registry import register_job

@register_job("NAME")
def job(plain, device, generator, out_dir):
    return {"plugin/seed": float(plain["seed"])}
""",
}

BUILTIN = {"geoconv.ops": "conv", "geoconv.grids": "planar", "geoconv.models": "stack", "geoconv.inputs": "noise"}
BUILTIN["geoconv.jobs"] = "shift"
OTHER_BUILTIN = {"geoconv.ops": "max_pool", "geoconv.grids": "healpix", "geoconv.models": "unet"}
OTHER_BUILTIN |= {"geoconv.inputs": "band_limited", "geoconv.jobs": "locality"}


def lookup(group: str, name: str) -> object:
    """Reach ``name`` the way a user does: build_op, get_grid, build_model, make_input, get_job."""
    plain: dict = {"op": {"name": "conv", "params": {}}, "grid": {"name": "planar", "size": 3}, "seed": 7}
    if group == "geoconv.ops":
        return build_op(name, 1, **({"factor": 3.0} if get_op(name).source != "geoconv" else {}))
    if group == "geoconv.grids":
        return get_grid(name)
    if group == "geoconv.models":
        kind = {"kind": name, "width": 5} if MODELS.source(name) != "geoconv" else {"kind": name}
        return build_model({**plain, "model": kind}, in_channels=2, classes=4)
    if group == "geoconv.inputs":
        plain["data"] = {"kind": name, "batch": 1, "channels": 2}
        return make_input(plain, torch.device("cpu"), torch.Generator().manual_seed(0))
    job = get_job(name)
    return job(plain, torch.device("cpu"), torch.Generator(), Path("unused")) if JOBS.source(name) != "geoconv" else job


def check_plugin_entry(group: str, name: str) -> None:
    """The plugin's entry, reached as a user would, computes what its source says."""
    entry = lookup(group, name)
    if group == "geoconv.ops":
        x = torch.randn(1, 1, 3, 3)
        torch.testing.assert_close(entry(x), 3.0 * x)
    elif group == "geoconv.grids":
        assert entry.name == name and entry.shape(2, 3, 4) == (2, 3, 4, 4)
        conv = build_op("conv", 1, 1, grid=name, kernel_size=3)  # a planar-family op runs on the new grid
        x = torch.randn(1, 1, 5, 5)
        torch.testing.assert_close(conv(x), torch.nn.functional.conv2d(x, conv.weight, conv.bias, padding=1))
    elif group == "geoconv.models":
        expected = {"op": "conv", "in_channels": 2, "grid": "planar", "params": {}, "padding_mode": None}
        assert entry.received == {**expected, "classes": 4, "width": 5}
    elif group == "geoconv.inputs":
        torch.testing.assert_close(entry, torch.arange(18.0).reshape(1, 2, 3, 3))
    else:
        assert entry == {"plugin/seed": 7.0}


def write_plugin(site: Path, group: str, dist: str, module: str, name: str) -> None:
    (site / f"{module}.py").write_text(GROUP_PLUGINS[group].replace("NAME", name), encoding="utf-8")
    write_distribution(site, dist, {name: module}, group=group)


@pytest.mark.parametrize("group", REGISTRIES)
def test_each_group_loads_a_plugin_from_its_distribution(site: Path, group: str) -> None:
    registry = REGISTRIES[group]
    write_plugin(site, group, "geoconv-pattern-plugin", "pattern_plugin", "pattern_entry")
    assert "pattern_entry" not in registry.names()  # plugins load once; a new distribution needs a reload
    assert "pattern_entry" in registry.load_plugins(reload=True)
    assert registry.source("pattern_entry") == "geoconv-pattern-plugin"
    check_plugin_entry(group, "pattern_entry")


@pytest.mark.parametrize("group", REGISTRIES)
def test_a_failing_plugin_in_each_group_warns_and_the_rest_work(site: Path, group: str) -> None:
    registry = REGISTRIES[group]
    write_plugin(site, group, "geoconv-pattern-plugin", "pattern_plugin", "pattern_entry")
    (site / "failing_plugin.py").write_text('raise ImportError("missing on purpose")\n', encoding="utf-8")
    write_distribution(site, "geoconv-failing-plugin", {"failing": "failing_plugin"}, group=group)
    with pytest.warns(PluginWarning) as record:
        loaded = registry.load_plugins(reload=True)
    messages = [str(w.message) for w in record if "'failing'" in str(w.message)]
    assert len(messages) == 1
    for needle in ("failing_plugin", "geoconv-failing-plugin", group, "ImportError", "missing on purpose"):
        assert needle in messages[0]
    assert "failing" not in loaded and "pattern_entry" in loaded
    check_plugin_entry(group, "pattern_entry")
    lookup(group, BUILTIN[group])  # the built-ins still work


@pytest.mark.parametrize("group", REGISTRIES)
def test_a_taken_name_in_each_group_is_refused(site: Path, group: str) -> None:
    registry, builtin = REGISTRIES[group], BUILTIN[group]
    original = registry.get(builtin)
    with pytest.raises(RegistryError, match=f"{builtin!r} is already registered"):
        registry.register(builtin, registry.get(OTHER_BUILTIN[group]))  # a real entry, another definition
    write_plugin(site, group, "geoconv-clashing-plugin", "clashing_plugin", builtin)
    with pytest.warns(PluginWarning, match=f"'{builtin}'.*geoconv-clashing-plugin.*already registered"):
        assert builtin not in registry.load_plugins(reload=True)
    assert registry.get(builtin) is original and registry.source(builtin) == "geoconv"
    lookup(group, builtin)


@pytest.mark.parametrize("group", REGISTRIES)
def test_an_unknown_name_in_each_group_suggests_the_closest(group: str) -> None:
    builtin = BUILTIN[group]
    misspelt = builtin[:-2] + builtin[-1] + builtin[-2]  # the last two letters swapped
    with pytest.raises(UnknownNameError) as info:
        lookup(group, misspelt)
    assert builtin in info.value.suggestions
    assert f"did you mean {builtin!r}" in str(info.value)


def test_the_example_readme_runs(site: Path) -> None:
    install_example(site)
    load_plugins(reload=True)
    for block in re.findall(r"```python\n(.*?)\n```", (EXAMPLE / "README.md").read_text(encoding="utf-8"), flags=re.S):
        exec(compile(block, str(EXAMPLE / "README.md"), "exec"), {})


def test_the_example_pyproject_declares_what_the_tests_install() -> None:
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((EXAMPLE / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["name"] == EXAMPLE_DIST
    assert project["version"] == EXAMPLE_VERSION
    assert project["entry-points"]["geoconv.ops"] == {"example": EXAMPLE_PACKAGE}
    assert any(dep.split(">")[0].split("=")[0].strip() == "geoconv" for dep in project["dependencies"])


@pytest.mark.slow
def test_pip_installed_example_plugin_is_found(tmp_path: Path) -> None:
    try:  # metadata, not find_spec("pip"), which disables setuptools' distutils shim (pypa/pip#8761)
        importlib.metadata.version("pip"), importlib.metadata.version("setuptools")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("needs pip and setuptools to build the example plugin without network")
    # Build from a copy: setuptools writes build/ and *.egg-info next to the sources.
    source = tmp_path / "src"
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    target = tmp_path / "target"
    install = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-build-isolation",
            "--no-deps",
            "--no-index",
            "--disable-pip-version-check",
            "--quiet",
            "--target",
            str(target),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    assert list(target.glob("geoconv_example_plugin-0.1.0.dist-info/entry_points.txt"))
    env = plugin_env(target)
    script = (
        "import json, torch, geoconv\n"
        f"spec = geoconv.get_op({EXAMPLE_OP!r})\n"
        "print(spec.source)\n"
        f"op = geoconv.build_op({EXAMPLE_OP!r}, 1, padding_mode='circular')\n"
        "x = torch.zeros(1, 1, 4, 4); x[0, 0, 0, 0] = 1.0\n"
        "print(json.dumps(op(x)[0, 0].tolist()))\n"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr
    source_line, values_line = run.stdout.strip().splitlines()
    assert source_line == EXAMPLE_DIST
    # A unit impulse at (0, 0) on a periodic 4×4 grid: -4 there, +1 at its four wrapped neighbours.
    expected = [[-4.0, 1.0, 0.0, 1.0], [1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]]
    assert json.loads(values_line) == expected
    cli = subprocess.run([sys.executable, "-m", "geoconv", "ops"], capture_output=True, text=True, env=env, timeout=300)
    assert cli.returncode == 0, cli.stderr
    assert any(line.startswith(EXAMPLE_OP) and EXAMPLE_DIST in line for line in cli.stdout.splitlines())
