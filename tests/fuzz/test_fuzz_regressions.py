"""The inputs the fuzz suite found that broke the library, pinned as plain tests."""

from __future__ import annotations

import pytest
import torch

import geoconv
from geoconv.errors import GeoconvError, ParameterError, ShapeError
from geoconv.grids import get_grid


@pytest.mark.parametrize(
    ("name", "grid", "params", "shape", "match"),
    [
        # Outputs that are not a signal on the grid: odd equirect width, 3x3 HEALPix faces, 2x1 cube faces.
        ("avg_pool", "equirect", {}, (1, 1, 2, 6), "even width"),
        ("max_pool", "healpix", {"kernel_size": 3, "stride": 2}, (1, 1, 12, 8, 8), "power of two"),
        ("conv", "cubemap", {"stride": (1, 2)}, (1, 1, 6, 2, 2), "square faces"),
        ("blur_pool", "healpix", {"stride": 3}, (1, 1, 12, 8, 8), "power of two"),
        ("downsample", "cubemap", {"size": (2, 1)}, (1, 1, 6, 2, 2), "square faces"),
    ],
)
def test_an_output_off_the_grid_is_refused(name, grid, params, shape, match) -> None:
    op = geoconv.build_op(name, 1, grid=grid, **params)
    with pytest.raises(ShapeError, match=match) as info:
        geoconv.get_op(name).apply(op, torch.randn(shape))
    assert "shape" in str(info.value)


@pytest.mark.parametrize("grid", ["cubemap", "healpix", "planar"])
@pytest.mark.parametrize("name", ["avg_pool", "upsample", "max_unpool", "conv"])
def test_an_empty_batch_runs(name: str, grid: str) -> None:
    # Was ZeroDivisionError in from_planes, and a RuntimeError reshaping 0 elements in max_unpool.
    x = torch.randn(get_grid(grid).shape(0, 1, 2))
    y = geoconv.get_op(name).apply(geoconv.build_op(name, 1, grid=grid), x)
    assert y.shape[:2] == (0, 1)


@pytest.mark.parametrize("dtype", [torch.bool, torch.complex64])
def test_max_pool_refuses_unordered_dtypes(dtype: torch.dtype) -> None:
    # Was NotImplementedError from torch.
    with pytest.raises(ShapeError, match="dtype"):
        geoconv.build_op("max_pool", 1)(torch.zeros(1, 1, 4, 4, dtype=dtype))


@pytest.mark.parametrize("grid", ["planar", "equirect", "cubemap", "healpix"])
@pytest.mark.parametrize(("batch", "channels", "size"), [(1, 1, "abc"), (1, 1, 0), (-1, 1, 2), (1, 0, 2)])
def test_grid_shape_checks_its_arguments(grid, batch, channels, size) -> None:
    # planar.shape returned (1, 1, 'abc', 'abc'); no grid checked batch or channels.
    with pytest.raises(ParameterError):
        get_grid(grid).shape(batch, channels, size)


@pytest.mark.parametrize(
    ("overrides", "match"),
    [(["seed=1.5"], "seed"), (["grid=healpix", "grid.size=3"], "grid.size"), (["data.channels=0"], "data.channels")],
)
def test_validate_checks_seed_sizes_and_channels(overrides, match) -> None:
    from pathlib import Path

    from hydra import compose, initialize_config_dir

    from geoconv.experiment.config import register_configs, validate

    register_configs()
    conf = Path(__file__).resolve().parents[2] / "conf"
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        cfg = compose(config_name="config", overrides=["experiment=shift_invariance", *overrides])
    with pytest.raises(GeoconvError, match=match):
        validate(cfg)


@pytest.mark.parametrize(
    ("name", "grid", "shape"),
    [("neighbour_conv", "healpix", (0, 1, 12, 2, 2)), ("spectral_conv", "equirect", (0, 1, 4, 8))],
)
def test_an_empty_batch_runs_through_the_sphere_only_ops(name: str, grid: str, shape) -> None:
    # Were a RuntimeError reshaping 0 elements and an MKL FFT error.
    y = geoconv.build_op(name, 1, 2, grid=grid)(torch.randn(shape))
    assert y.shape == (0, 2, *shape[2:])


@pytest.mark.parametrize("grid", ["cubemap", "healpix"])
def test_an_empty_batch_rotates(grid: str) -> None:
    # Was a RuntimeError reshaping 0 elements in the gather.
    from geoconv.grids import random_rotation, rotate

    x = torch.randn(get_grid(grid).shape(0, 1, 2))
    assert rotate(x, grid, random_rotation(generator=torch.Generator().manual_seed(0))).shape == x.shape


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_bool_maps_pad_like_uint8(mode: str) -> None:
    # Was NotImplementedError: "reflection_pad2d" not implemented for 'Bool'.
    x = torch.rand(1, 1, 3, 4, generator=torch.Generator().manual_seed(0)) > 0.5
    y = get_grid("planar").pad(x, 1, mode)
    assert y.dtype == torch.bool and torch.equal(y, get_grid("planar").pad(x.to(torch.uint8), 1, mode).bool())


def test_conv_transpose_refuses_padding_wider_than_the_face() -> None:
    # Was an AssertionError ("index out of range of the source") building the adjoint's table.
    op = geoconv.build_op("conv_transpose", 1, grid="equirect", dilation=3)
    with pytest.raises(ParameterError, match="face size"):
        op(torch.randn(1, 1, 1, 2))


@pytest.mark.parametrize("factor", [float("inf"), (2.0, float("inf"))])
def test_resample_refuses_an_infinite_factor(factor) -> None:
    # Was OverflowError: cannot convert float infinity to integer, at the first forward.
    with pytest.raises(ParameterError, match="scale_factor"):
        geoconv.build_op("upsample", 1, scale_factor=factor)


@pytest.mark.parametrize("grid", ["planar", "healpix"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_antialiased_downsample_takes_half_precision_on_cpu(dtype: torch.dtype, grid: str) -> None:
    # Was NotImplementedError: "compute_index_ranges_weights" not implemented for 'Half'.
    x = torch.randn(get_grid(grid).shape(1, 2, 8))
    op = geoconv.build_op("downsample", 2, grid=grid, antialias=True)
    y = op(x.to(dtype))
    assert y.dtype == dtype and torch.allclose(y.float(), op(x), atol=0.05)
