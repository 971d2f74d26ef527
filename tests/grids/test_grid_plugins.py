"""The example grid plugin (a torus), installed as a real distribution, runs every planar-family op and the experiments.

The plugin is laid out in a temporary site directory with its ``.dist-info`` (see
``conftest.py``) and found through the ``geoconv.grids`` entry point; a slow test really
``pip install``s it. Every op registered for every grid runs on it, checked against
``torch.nn.functional`` with circular padding written as plain modular indexing, against the
same op on the plane with ``padding_mode="circular"``, and against the torus's exact
symmetry: translations (``torch.roll``) commute with every op, by whole output pixels.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import math
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import geoconv
from geoconv.grids import Grid, get_grid, list_grids
from geoconv.grids.registry import GRIDS
from geoconv.ops.registry import get_op, list_ops
from tests.grids.conftest import (
    EXAMPLE,
    EXAMPLE_DIST,
    EXAMPLE_GRID,
    EXAMPLE_PACKAGE,
    EXAMPLE_VERSION,
    ROOT,
    install_example,
)

EVERY_GRID_OPS = [name for name in list_ops() if get_op(name).every_grid]
"""The planar family: ops written once against the grid interface, registered for every grid."""


def _seed(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def circular(x: torch.Tensor, top: int, bottom: int, left: int, right: int) -> torch.Tensor:
    """Pad the last two dims periodically with plain modular indexing (independent of F.pad)."""
    h, w = x.shape[-2:]
    rows = torch.arange(-top, h + bottom) % h
    cols = torch.arange(-left, w + right) % w
    return x[..., rows, :][..., cols]


# -- discovery --------------------------------------------------------------------------------


def test_the_example_grid_is_discovered_through_distribution_metadata(grid_site: Path) -> None:
    install_example(grid_site)
    loaded = GRIDS.load_plugins(reload=True)
    assert EXAMPLE_GRID in loaded
    assert EXAMPLE_GRID in list_grids()
    grid = get_grid(EXAMPLE_GRID)
    assert isinstance(grid, Grid) and type(grid).__name__ == "TorusGrid"
    assert GRIDS.source(EXAMPLE_GRID) == EXAMPLE_DIST
    assert Path(sys.modules[EXAMPLE_PACKAGE].__file__).is_relative_to(grid_site)
    assert (grid.name, grid.layout, grid.spherical) == ("torus", "(B, C, H, W)", False)
    assert grid.default_padding_mode == "circular"
    assert set(grid.padding_modes) == {"circular", "zeros", "constant", "reflect", "replicate"}
    assert grid.shape(2, 3, grid.default_size) == (2, 3, 16, 16)
    for name in EVERY_GRID_OPS:  # the planar family now lists the plugin's grid
        assert EXAMPLE_GRID in get_op(name).grids


def test_the_example_pyproject_declares_what_the_tests_install() -> None:
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((EXAMPLE / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["name"] == EXAMPLE_DIST
    assert project["version"] == EXAMPLE_VERSION
    assert project["entry-points"]["geoconv.grids"] == {EXAMPLE_GRID: EXAMPLE_PACKAGE}
    assert any(dep.split(">")[0].split("=")[0].strip() == "geoconv" for dep in project["dependencies"])


def test_torus_padding_wraps_both_ways(torus: Grid) -> None:
    x = torch.randn(2, 3, 5, 7, dtype=torch.float64, generator=_seed())
    for widths in ((1, 1, 1, 1), (0, 2, 3, 1), (5, 5, 7, 7)):
        assert torch.equal(torus.pad(x, widths), circular(x, *widths))
    torch.testing.assert_close(torus.pad(x, 2, "reflect"), F.pad(x, (2, 2, 2, 2), mode="reflect"), rtol=0, atol=0)
    assert torch.equal(torus.pad(x, 1, "zeros")[..., 1:-1, 1:-1], x) and torus.pad(x, 1, "zeros")[..., 0, :].eq(0).all()
    with pytest.raises(geoconv.GeoconvError, match="circular padding needs each width at most its dimension"):
        torus.pad(x, (6, 0, 0, 0))
    with pytest.raises(geoconv.GeoconvError, match="padding_mode for grid 'torus'.*'sphere'"):
        torus.pad(x, 1, "sphere")
    with pytest.raises(geoconv.errors.ShapeError, match=r"\(B, C, H, W\)"):
        torus.check(torch.zeros(2, 3, 4))


# -- every planar-family op -------------------------------------------------------------------

Reference = Callable[[torch.nn.Module, torch.Tensor], torch.Tensor]


def _conv_reference(op: torch.nn.Module, x: torch.Tensor, stride: int, pads: tuple[int, int, int, int], dilation=1):
    return F.conv2d(circular(x, *pads), op.weight, op.bias, stride=stride, dilation=dilation)


def _conv_transpose_reference(op: torch.nn.Module, y: torch.Tensor) -> torch.Tensor:
    # The adjoint of "pad circularly (TF same for 2H: 0 before, 1 after), conv stride 2", by autograd.
    size = 2 * y.shape[-1]
    z = torch.zeros(y.shape[0], op.weight.shape[1], size, size, dtype=y.dtype)
    _, vjp = torch.func.vjp(lambda t: F.conv2d(circular(t, 0, 1, 0, 1), op.weight, stride=2), z)
    return vjp(y)[0] + op.bias[:, None, None]


def _blur_reference(op: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    b = torch.tensor([1.0, 2.0, 1.0], dtype=x.dtype) / 4
    kernel = (b[:, None] * b[None, :]).expand(x.shape[1], 1, 3, 3)
    return F.conv2d(circular(x, 0, 1, 0, 1), kernel, stride=2, groups=x.shape[1])


REFERENCES: dict[str, tuple[dict, Reference]] = {
    "conv": ({"kernel_size": 3}, lambda op, x: _conv_reference(op, x, 1, (1, 1, 1, 1))),
    "conv/stride": ({"kernel_size": 3, "stride": 2}, lambda op, x: _conv_reference(op, x, 2, (0, 1, 0, 1))),
    "conv/dilation": ({"kernel_size": 3, "dilation": 2}, lambda op, x: _conv_reference(op, x, 1, (2, 2, 2, 2), 2)),
    "conv_transpose": ({"kernel_size": 3, "stride": 2}, _conv_transpose_reference),
    "max_pool": (
        {"kernel_size": 3, "stride": 2, "padding": 1},
        lambda op, x: F.max_pool2d(circular(x, *[1] * 4), 3, 2),
    ),
    "avg_pool": (
        {"kernel_size": 3, "stride": 1, "padding": 1},
        lambda op, x: F.avg_pool2d(circular(x, *[1] * 4), 3, 1),
    ),
    "blur_pool": ({"filter_size": 3, "stride": 2}, _blur_reference),
    "upsample": (
        {"scale_factor": 2.0},
        lambda op, x: F.interpolate(circular(x, 1, 1, 1, 1), scale_factor=2.0, mode="bilinear")[..., 2:-2, 2:-2],
    ),
    "downsample": ({"scale_factor": 0.5}, lambda op, x: F.interpolate(x, scale_factor=0.5, mode="bilinear")),
}
"""Op (and a variant after ``/``) -> its parameters and a torch reference on the torus."""


PLANE_IGNORES_PADDING = {"upsample"}
"""Ops whose planar path lets torch handle the border whatever the padding mode (upsample clamps at the
edge), so the plane with ``padding_mode="circular"`` is no reference; their torch reference is above."""


def _run(name: str, op: torch.nn.Module, x: torch.Tensor, grid: str) -> torch.Tensor:
    """Apply ``op``; ``max_unpool`` takes the output and indices of a max pool on the same grid."""
    if name != "max_unpool":
        return op(x)
    pooled, indices = geoconv.build_op("max_pool", x.shape[1], grid=grid, return_indices=True)(x)
    return op(pooled, indices)


def _build(name: str, grid: str, **params) -> torch.nn.Module:
    spec = get_op(name)
    channels = (4, None) if spec.same_channels else (4, 6)
    return geoconv.build_op(name, *(c for c in channels if c is not None), grid=grid, **params).double()


def _has_padding_mode(name: str) -> bool:
    return any(p.name == "padding_mode" for p in get_op(name).parameters())


@pytest.mark.parametrize("key", sorted(REFERENCES))
def test_torus_ops_match_torch_with_circular_padding(torus: Grid, key: str) -> None:
    name = key.split("/")[0]
    params, reference = REFERENCES[key]
    op = _build(name, "torus", **params)
    x = torch.randn(2, 4, 16, 16, dtype=torch.float64, generator=_seed())
    torch.testing.assert_close(op(x), reference(op, x), rtol=1e-12, atol=1e-12)


def test_torus_max_unpool_matches_torch(torus: Grid) -> None:
    x = torch.randn(2, 4, 16, 16, dtype=torch.float64, generator=_seed())
    pooled, indices = geoconv.build_op("max_pool", 4, grid="torus", return_indices=True)(x)
    expected_pooled, expected_indices = F.max_pool2d(x, 2, return_indices=True)
    assert torch.equal(pooled, expected_pooled) and torch.equal(indices, expected_indices)
    unpooled = geoconv.build_op("max_unpool", 4, grid="torus")(pooled, indices)
    assert torch.equal(unpooled, F.max_unpool2d(pooled, indices, 2))


def test_torus_gated_conv_is_the_gated_formula(torus: Grid) -> None:
    op = _build("gated_conv", "torus", kernel_size=3)
    x = torch.randn(2, 4, 8, 8, dtype=torch.float64, generator=_seed())
    k = op.kernels()
    padded = circular(x, 1, 1, 1, 1)
    feature = F.elu(F.conv2d(padded, k["feature_weight"], k["feature_bias"]))
    gate = torch.sigmoid(F.conv2d(padded, k["gate_weight"], k["gate_bias"]))
    torch.testing.assert_close(op(x), feature * gate, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", [name for name in EVERY_GRID_OPS if name not in PLANE_IGNORES_PADDING])
def test_every_planar_family_op_runs_on_the_torus_as_on_the_plane_with_circular_padding(torus: Grid, name: str) -> None:
    """Built with defaults, on the torus it is the planar op with ``padding_mode="circular"`` (same weights)."""
    on_torus = _build(name, "torus")
    planar_mode = {"padding_mode": "circular"} if _has_padding_mode(name) else {}
    on_plane = _build(name, "planar", **planar_mode)
    on_plane.load_state_dict(on_torus.state_dict())
    if _has_padding_mode(name):  # the torus's own padding is its default, in the op and any op inside it
        assert {m.padding_mode for m in on_torus.modules() if isinstance(getattr(m, "padding_mode", None), str)} == {
            "circular"
        }
    x = torch.randn(2, 4, 16, 16, dtype=torch.float64, generator=_seed())
    y = _run(name, on_torus, x, "torus")
    torch.testing.assert_close(y, _run(name, on_plane, x, "planar"), rtol=1e-12, atol=1e-12)
    assert torus.check(y) is y


@pytest.mark.parametrize("name", EVERY_GRID_OPS)
def test_every_planar_family_op_commutes_with_the_torus_translations(torus: Grid, name: str) -> None:
    """An exact symmetry: rolling the input by whole output pixels rolls the output."""
    op = _build(name, "torus")
    x = torch.randn(1, 4, 16, 16, dtype=torch.float64, generator=_seed(1))
    y = _run(name, op, x, "torus")
    ratio = Fraction(y.shape[-1], x.shape[-1])  # output pixels per input pixel
    # The smallest input shift that is a whole number of output pixels (and, for max_unpool,
    # of the max pool's stride 2 that _run pools with first).
    step = math.lcm(ratio.denominator, 2 if name == "max_unpool" else 1)
    for rows, cols in ((step, 2 * step), (3 * step, -step)):
        moved = _run(name, op, torus.roll(x, (rows, cols)), "torus")
        expected = torus.roll(y, (int(rows * ratio), int(cols * ratio)))
        torch.testing.assert_close(moved, expected, rtol=1e-12, atol=1e-12)


# -- configs and experiments ------------------------------------------------------------------


def test_hydra_grid_group_accepts_the_plugin_grid_without_a_yaml(torus: Grid) -> None:
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from geoconv.experiment.config import register_configs, validate

    assert not (ROOT / "conf" / "grid" / f"{EXAMPLE_GRID}.yaml").exists()
    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="config", overrides=["experiment=shift_invariance", "grid=torus"])
        planar = compose(config_name="config", overrides=["experiment=shift_invariance"])
    plain = validate(cfg)
    assert plain["grid"] == {"name": "torus", "size": torus.default_size}
    assert validate(planar)["grid"] == {"name": "planar", "size": 32}  # the shipped YAML still wins


def test_shift_invariance_experiment_runs_on_the_installed_torus(grid_site: Path, tmp_path: Path) -> None:
    install_example(grid_site)
    run_dir = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(grid_site), str(ROOT), os.environ.get("PYTHONPATH", "")])}
    command = [
        sys.executable,
        str(ROOT / "experiments" / "run.py"),
        "experiment=shift_invariance",
        "grid=torus",
        "grid.size=16",
        f"hydra.run.dir={run_dir}",
        "job.absolute_position=false",
    ]
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    written = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    assert written["status"] == "ok"
    assert written["config"]["grid"] == {"name": "torus", "size": 16}
    metrics = written["metrics"]
    # A conv stack with the torus's circular padding is exactly equivariant under circular shifts.
    assert metrics["shift/circular/error_max"] == 0.0
    assert metrics["shift/crop/error_max"] > 0.01  # crop shifts change the content: not a symmetry


def _installed(distribution: str) -> bool:
    try:
        importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


@pytest.mark.slow
def test_pip_installed_example_grid_plugin_is_found(tmp_path: Path) -> None:
    # Asked of the installed metadata, not importlib.util.find_spec("pip"): looking pip up through
    # the import system makes setuptools' distutils shim stand down for the rest of this process
    # (pypa/pip#8761), and torch.compile's inductor then fails to import setuptools.
    if not _installed("pip") or not _installed("setuptools"):
        pytest.skip("needs pip and setuptools to build the example plugin without network")
    # Build from a copy: setuptools writes build/ and *.egg-info next to the sources.
    source = tmp_path / "src"
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    target = tmp_path / "target"
    install = subprocess.run(
        [
            *(sys.executable, "-m", "pip", "install", "--no-build-isolation", "--no-deps", "--no-index"),
            *("--disable-pip-version-check", "--quiet", "--target", str(target), str(source)),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    assert list(target.glob("geoconv_example_grid_plugin-0.1.0.dist-info/entry_points.txt"))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), os.environ.get("PYTHONPATH", "")])}
    script = (
        "import json, torch, geoconv\n"
        "from geoconv.grids import get_grid\n"
        "from geoconv.grids.registry import GRIDS\n"
        f"print(GRIDS.source({EXAMPLE_GRID!r}))\n"
        f"conv = geoconv.build_op('conv', 1, 1, grid={EXAMPLE_GRID!r}, kernel_size=3, bias=False)\n"
        "torch.nn.init.ones_(conv.weight)\n"
        "x = torch.zeros(1, 1, 4, 4); x[0, 0, 0, 0] = 1.0\n"
        "print(json.dumps(conv(x)[0, 0].tolist()))\n"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr
    source_line, values_line = run.stdout.strip().splitlines()
    assert source_line == EXAMPLE_DIST
    # A box filter of a unit impulse at (0, 0) on a periodic 4x4 grid: ones on its wrapped 3x3 neighbourhood.
    expected = [[1.0, 1.0, 0.0, 1.0], [1.0, 1.0, 0.0, 1.0], [0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 0.0, 1.0]]
    assert json.loads(values_line) == expected
