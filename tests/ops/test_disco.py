"""``disco_conv``: the adapter against torch-harmonics' ``DiscreteContinuousConvS2`` called directly.

torch-harmonics is an optional extra; without it these tests skip (saying why), except the
ones that check the op is then not registered, which run in a fresh interpreter.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import geoconv
from geoconv.errors import GeoconvError, ParameterError, ShapeError
from geoconv.ops import disco


@pytest.fixture
def th():
    if not disco.AVAILABLE:
        pytest.skip(f"torch-harmonics is an optional extra (pip install 'geoconv[disco]'); here {disco._REASON}")
    import torch_harmonics

    return torch_harmonics


_UNREGISTERED = """
import warnings
import geoconv
from geoconv.ops import disco
from geoconv.ops.registry import PluginWarning
assert not disco.AVAILABLE
assert "disco_conv" not in geoconv.list_ops()
try:
    geoconv.build_op("disco_conv", 2, grid="equirect")
except geoconv.errors.UnknownNameError as error:  # the extra to install, not a bare "unknown op"
    assert "pip install 'geoconv[disco]'" in str(error), error
else:
    raise AssertionError("disco_conv built without torch-harmonics")
try:
    disco.DiscoConv(2, 2)
except geoconv.errors.GeoconvError as error:  # not an ImportError deep in a traceback: the extra to install
    assert "needs the optional extra torch-harmonics" in str(error), error
    assert "pip install 'geoconv[disco]'" in str(error), error
else:
    raise AssertionError("DiscoConv built without torch-harmonics")
print("ok", "broken" if any(issubclass(w.category, PluginWarning) for w in CAUGHT) else "absent")
"""


@pytest.mark.parametrize("case", ["absent", "broken"])
def test_not_registered_without_a_working_torch_harmonics(case: str, tmp_path: Path, capsys) -> None:
    # "absent": as if not installed; "broken": an installed package whose import fails, as a
    # torch-harmonics wheel built for another torch does ("undefined symbol"), which must warn.
    script = textwrap.dedent(_UNREGISTERED)
    if case == "absent" and not disco.AVAILABLE:
        exec(script, {"CAUGHT": []})  # this interpreter already lacks it: check here, no subprocess
        assert capsys.readouterr().out.split() == ["ok", case]
        return
    if case == "absent":
        prelude = "import sys\nsys.modules['torch_harmonics'] = None\n"
    else:
        package = tmp_path / "torch_harmonics"
        package.mkdir()
        (package / "__init__.py").write_text("raise ImportError('undefined symbol: _ZN5torch7Library')\n")
        prelude = f"import sys\nsys.path.insert(0, {str(tmp_path)!r})\n"
    prelude += "import warnings\nwarnings.simplefilter('always')\nCAUGHT = []\n"
    prelude += "warnings.showwarning = lambda *args, **kwargs: CAUGHT.append(warnings.WarningMessage(*args[:4]))\n"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, "-c", prelude + script], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["ok", case]


def test_registered_on_equirect(th) -> None:
    assert "disco_conv" in geoconv.list_ops(grid="equirect")
    assert geoconv.get_op("disco_conv").grids == ("equirect",)


CONFIGS = [
    {},
    {"kernel_shape": 3, "bias": False},
    {"kernel_shape": (2, 3), "basis_type": "harmonic", "theta_cutoff": 0.4},
    {"stride": 2, "groups": 2},
    {"th_grid": "legendre-gauss", "basis_norm_mode": "mean"},
]


def _pair(seed: int, config: dict, dtype: torch.dtype = torch.float32):
    """Our op and torch-harmonics' module with the same weights, for a (2, 4, 16, 32) input."""
    from torch_harmonics import DiscreteContinuousConvS2

    torch.manual_seed(seed)
    ours = geoconv.build_op("disco_conv", 4, 6, grid="equirect", **config).to(dtype)
    if ours.bias is not None:
        with torch.no_grad():
            ours.bias.normal_()
    cfg = ours.config
    theirs = DiscreteContinuousConvS2(
        4,
        6,
        in_shape=(16, 32),
        out_shape=(16 // cfg.stride, 32 // cfg.stride),
        kernel_shape=cfg.kernel_shape,
        basis_type=cfg.basis_type,
        basis_norm_mode=cfg.basis_norm_mode,
        groups=cfg.groups,
        grid_in=cfg.th_grid,
        grid_out=cfg.th_grid,
        bias=cfg.bias,
        theta_cutoff=cfg.theta_cutoff,
    ).to(dtype)
    theirs.load_state_dict(ours.state_dict())
    return ours, theirs


@pytest.mark.filterwarnings("ignore:Default theta_cutoff changed")  # torch-harmonics 0.9.3, non-equiangular grids
@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()) or "defaults")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_matches_torch_harmonics_called_directly(th, config: dict, dtype: torch.dtype) -> None:
    ours, theirs = _pair(0, config, dtype)
    x = torch.randn(2, 4, 16, 32, dtype=dtype, generator=torch.Generator().manual_seed(1))
    x_ours, x_theirs = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    y_ours, y_theirs = ours(x_ours), theirs(x_theirs)
    assert y_ours.shape == (2, 6, 16 // ours.config.stride, 32 // ours.config.stride)
    assert y_ours.abs().mean() > 0.1
    torch.testing.assert_close(y_ours, y_theirs, rtol=0, atol=0)
    probe = torch.randn(y_ours.shape, dtype=dtype, generator=torch.Generator().manual_seed(2))
    (y_ours * probe).sum().backward()
    (y_theirs * probe).sum().backward()
    torch.testing.assert_close(x_ours.grad, x_theirs.grad, rtol=0, atol=0)
    torch.testing.assert_close(ours.weight.grad, theirs.weight.grad, rtol=0, atol=0)


def test_initialised_as_torch_harmonics_and_state_is_weight_and_bias(th) -> None:
    from torch_harmonics import DiscreteContinuousConvS2

    torch.manual_seed(3)
    ours = geoconv.build_op("disco_conv", 4, 6, grid="equirect", kernel_shape=(3, 4))
    torch.manual_seed(3)
    theirs = DiscreteContinuousConvS2(4, 6, in_shape=(16, 32), out_shape=(16, 32), kernel_shape=(3, 4))
    assert torch.equal(ours.weight, theirs.weight) and torch.equal(ours.bias, theirs.bias)
    assert set(ours.state_dict()) == {"weight", "bias"}


def test_first_call_leaves_the_random_stream_alone(th) -> None:
    op = geoconv.build_op("disco_conv", 2, 2, grid="equirect")
    x = torch.randn(1, 2, 10, 20)
    before = torch.random.get_rng_state()
    op(x)  # builds the torch-harmonics module for this size, which draws throwaway weights
    assert torch.equal(torch.random.get_rng_state(), before)


@pytest.mark.parametrize("stride", [1, 2])
def test_commutes_with_longitude_rolls_by_the_stride(th, stride: int) -> None:
    # Longitudes are the same on both grids, so a roll by `stride` columns is an exact symmetry.
    torch.manual_seed(0)
    op = geoconv.build_op("disco_conv", 3, 4, grid="equirect", stride=stride).double()
    x = torch.randn(2, 3, 12, 24, dtype=torch.float64)
    for k in (1, 5):
        rolled = op(torch.roll(x, k * stride, dims=-1))
        torch.testing.assert_close(rolled, torch.roll(op(x), k, dims=-1), rtol=1e-12, atol=1e-12)


def test_bad_input_and_parameters(th) -> None:
    op = geoconv.build_op("disco_conv", 4, 4, grid="equirect", stride=2)
    assert op(torch.randn(1, 4, 12, 20)).shape == (1, 4, 6, 10)
    with pytest.raises(ShapeError, match=r"stride=2.*W/2 even.*\(1, 4, 12, 18\)"):
        op(torch.randn(1, 4, 12, 18))  # the output width 9 would be odd
    with pytest.raises(ShapeError, match=r"stride=2.*\(1, 4, 9, 20\)"):
        op(torch.randn(1, 4, 9, 20))
    with pytest.raises(ShapeError, match="in_channels=4"):
        op(torch.randn(1, 3, 8, 16))
    with pytest.raises(ShapeError, match="even width"):
        op(torch.randn(1, 4, 8, 15))
    with pytest.raises(ParameterError, match="divisible by groups=3"):
        geoconv.build_op("disco_conv", 4, 6, grid="equirect", groups=3)
    with pytest.raises(ParameterError, match="basis_type='hexagonal'"):
        geoconv.build_op("disco_conv", 4, grid="equirect", basis_type="hexagonal")
    with pytest.raises(ParameterError, match="th_grid='healpix'"):
        geoconv.build_op("disco_conv", 4, grid="equirect", th_grid="healpix")
    with pytest.raises(ParameterError, match="theta_cutoff"):
        geoconv.build_op("disco_conv", 4, grid="equirect", theta_cutoff=-0.1)
    with pytest.raises(GeoconvError, match="equirect"):
        geoconv.build_op("disco_conv", 4, grid="planar")


def test_torch_harmonics_modules_are_cached_per_size_and_bounded(th) -> None:
    op = geoconv.build_op("disco_conv", 1, 1, grid="equirect", kernel_shape=2)
    for height in range(4, 4 + disco._CACHE_SIZE + 3):
        op(torch.randn(1, 1, height, 2 * height))
    assert len(op._convs) == disco._CACHE_SIZE
    first = op._conv_for(14, 28, torch.device("cpu"))
    assert op._conv_for(14, 28, torch.device("cpu")) is first
