"""Plugins are found through real distribution metadata, and a bad plugin never breaks the rest.

Each test writes distributions into a temporary directory the way an installer lays them
out (a package next to ``NAME-VERSION.dist-info/`` with ``METADATA`` and
``entry_points.txt``), puts the directory on ``sys.path`` and lets
:func:`geoconv.registry.load_plugins` find them through :mod:`importlib.metadata`. No
network, nothing installed into the environment. The slow test really ``pip install``s
the example plugin into a temporary target directory.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from geoconv.cli import main
from geoconv.ops.registry import PluginWarning, build_op, get_op, list_ops, load_plugins, register_op, unregister_op

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "geoconv-example-plugin"
EXAMPLE_DIST = "geoconv-example-plugin"
EXAMPLE_VERSION = "0.1.0"
EXAMPLE_PACKAGE = "geoconv_example_plugin"
EXAMPLE_OP = "example_laplacian"


def write_distribution(site: Path, name: str, entry_points: dict[str, str], version: str = "0.1.0") -> Path:
    """Write ``NAME-VERSION.dist-info`` with METADATA and a ``geoconv.ops`` entry_points.txt."""
    dist_info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n", encoding="utf-8")
    lines = "".join(f"{key} = {value}\n" for key, value in entry_points.items())
    (dist_info / "entry_points.txt").write_text(f"[geoconv.ops]\n{lines}", encoding="utf-8")
    return dist_info


def install_example(site: Path) -> None:
    """Lay the example plugin out in ``site`` as pip would: its package and its dist-info."""
    shutil.copytree(EXAMPLE / EXAMPLE_PACKAGE, site / EXAMPLE_PACKAGE, ignore=shutil.ignore_patterns("__pycache__"))
    write_distribution(site, EXAMPLE_DIST, {"example": EXAMPLE_PACKAGE}, EXAMPLE_VERSION)


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A fresh directory on ``sys.path``; the registry and ``sys.modules`` are restored afterwards."""
    before = {name: get_op(name) for name in list_ops()}  # also loads the environment's plugins first
    modules_before = set(sys.modules)
    directory = tmp_path / "site-packages"
    directory.mkdir()
    monkeypatch.syspath_prepend(str(directory))
    yield directory
    monkeypatch.undo()
    for name in list_ops():
        if name not in before:
            unregister_op(name)
    for module in set(sys.modules) - modules_before:
        if str(tmp_path) in str(getattr(sys.modules[module], "__file__", "") or ""):
            del sys.modules[module]
    load_plugins(reload=True)
    replaced = [name for name, spec in before.items() if get_op(name) is not spec]
    for name in replaced:
        spec = before[name]
        register_op(
            name,
            grids=spec.grids,
            config=spec.config,
            doc=spec.doc,
            same_channels=spec.same_channels,
            apply=spec.apply,
            override=True,
        )(spec.factory)
    assert not replaced, f"a test replaced built-in ops: {replaced}"
    assert sorted(before) == list_ops()


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
    messages = [str(w.message) for w in record if issubclass(w.category, PluginWarning)]
    assert len(messages) == 1
    message = messages[0]
    for needle in ("'broken'", "broken_geoconv_plugin", "geoconv-broken-plugin", "RuntimeError", "broken on purpose"):
        assert needle in message
    assert "broken" not in loaded
    assert "example" in loaded  # another plugin is unaffected
    assert get_op(EXAMPLE_OP).source == EXAMPLE_DIST
    conv = build_op("conv", 2, 3, kernel_size=3)
    assert conv(torch.randn(1, 2, 5, 5)).shape == (1, 3, 5, 5)


def test_a_plugin_reusing_a_builtin_name_warns_and_does_not_replace_it(site: Path) -> None:
    original = get_op("conv")
    (site / "clashing_geoconv_plugin.py").write_text(
        "from dataclasses import dataclass\n"
        "import torch\n"
        "from geoconv import register_op\n\n\n"
        "@dataclass\n"
        "class Config:\n"
        "    pass\n\n\n"
        '@register_op("conv", config=Config)\n'
        "class NotAConv(torch.nn.Identity):\n"
        '    """Pretends to be conv."""\n',
        encoding="utf-8",
    )
    write_distribution(site, "geoconv-clashing-plugin", {"clash": "clashing_geoconv_plugin"})
    with pytest.warns(PluginWarning, match=r"'clash'.*geoconv-clashing-plugin.*already registered"):
        loaded = load_plugins(reload=True)
    assert "clash" not in loaded
    assert get_op("conv") is original
    assert get_op("conv").source == "geoconv"
    x = torch.randn(1, 2, 6, 6)
    y = build_op("conv", 2, 4)(x)
    assert y.shape == (1, 4, 6, 6)  # a real conv, not the identity the plugin tried to put there


def test_an_entry_point_may_name_a_registering_function(site: Path) -> None:
    (site / "function_geoconv_plugin.py").write_text(
        "from dataclasses import dataclass\n"
        "import torch\n"
        "from geoconv import register_op\n\n\n"
        "@dataclass\n"
        "class Config:\n"
        "    factor: float = 2.0\n\n\n"
        "class Scale(torch.nn.Module):\n"
        '    """Multiply by a constant."""\n\n'
        "    def __init__(self, in_channels, out_channels, grid='planar', config=None):\n"
        "        super().__init__()\n"
        "        self.factor = config.factor\n\n"
        "    def forward(self, x):\n"
        "        return self.factor * x\n\n\n"
        "def register():\n"
        '    register_op("function_plugin_scale", config=Config, same_channels=True)(Scale)\n',
        encoding="utf-8",
    )
    write_distribution(site, "geoconv-function-plugin", {"scale": "function_geoconv_plugin:register"})
    assert "scale" in load_plugins(reload=True)
    assert get_op("function_plugin_scale").source == "geoconv-function-plugin"
    x = torch.randn(1, 1, 3, 3)
    torch.testing.assert_close(build_op("function_plugin_scale", 1, factor=3.0)(x), 3.0 * x)


def test_the_example_pyproject_declares_what_the_tests_install() -> None:
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((EXAMPLE / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["name"] == EXAMPLE_DIST
    assert project["version"] == EXAMPLE_VERSION
    assert project["entry-points"]["geoconv.ops"] == {"example": EXAMPLE_PACKAGE}
    assert any(dep.split(">")[0].split("=")[0].strip() == "geoconv" for dep in project["dependencies"])


@pytest.mark.slow
def test_pip_installed_example_plugin_is_found(tmp_path: Path) -> None:
    if importlib.util.find_spec("pip") is None or importlib.util.find_spec("setuptools") is None:
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
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(target), os.environ.get("PYTHONPATH", "")]),
        "COLUMNS": "300",
    }
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
