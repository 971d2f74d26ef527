"""The planar family on the spherical grids: exact symmetries, the HEALPix hierarchy, adjoints.

References: exact grid symmetries (a longitude roll on equirect, the 90° turn about the
pole on the cube map and HEALPix) that a correctly padded network must commute with to
float round-off; healpy's ``ud_grade`` for the NESTED hierarchy; and the definition of the
adjoint for the transposed convolution.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import geoconv
from geoconv.grids import get_grid

SPHERES = ["equirect", "cubemap", "healpix"]
OWN_MODE = {"equirect": "sphere", "cubemap": "cube", "healpix": "healpix"}


def _random(grid: str, channels: int, size: int, seed: int = 0, dtype=torch.float64) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(get_grid(grid).shape(2, channels, size), generator=generator, dtype=dtype)


def _network(grid: str, mode: str | None = None, dtype=torch.float64) -> torch.nn.Sequential:
    torch.manual_seed(0)
    layers = [
        geoconv.build_op("conv", 3, 6, grid=grid, kernel_size=3, padding_mode=mode),
        torch.nn.Tanh(),
        geoconv.build_op("gated_conv", 6, 6, grid=grid, kernel_size=3, dilation=2, padding_mode=mode),
        geoconv.build_op("blur_pool", 6, grid=grid, filter_size=3, stride=1, padding_mode=mode),
        geoconv.build_op("conv", 6, 4, grid=grid, kernel_size=5, padding_mode=mode),
    ]
    return torch.nn.Sequential(*layers).to(dtype)


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).detach().norm() / b.detach().norm())


def _symmetry(grid: str):
    """The grid's exact symmetry (and its action after a total stride)."""
    if grid == "equirect":
        return lambda x, k: torch.roll(x, shifts=k, dims=-1)
    return lambda x, k: get_grid(grid).quarter_turn(x, k)


def _make_c4_symmetric(net: torch.nn.Module) -> None:
    """Average every kernel over its four 90° rotations, so that it commutes with rot90."""
    with torch.no_grad():
        for name, weight in net.named_parameters():
            if name.endswith("weight") and weight.dim() == 4:
                weight.copy_(sum(torch.rot90(weight, k, dims=(-2, -1)) for k in range(4)) / 4)


@pytest.mark.parametrize("grid", SPHERES)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_own_padding_makes_a_network_commute_with_the_grid_symmetry(grid: str, dtype: torch.dtype) -> None:
    net = _network(grid, dtype=dtype)
    if grid == "cubemap":
        # The quarter turn rotates the polar faces in their own plane, and a planar conv
        # commutes with that only if its kernels do: the cube map is exactly equivariant
        # for C4-symmetric kernels only (see test_cubemap_generic_kernels_are_not_equivariant).
        _make_c4_symmetric(net)
    x = _random(grid, 3, 8, dtype=dtype)
    act = _symmetry(grid)
    for k in (1, 2, 3):
        error = _relative(net(act(x, k)), act(net(x), k))
        assert error < (1e-12 if dtype == torch.float64 else 1e-5), (grid, k, error)


def test_cubemap_generic_kernels_are_not_equivariant() -> None:
    # The limit of the cube map stated above, measured: generic kernels see the polar faces
    # turned by 90 degrees, so the error is of the order of the signal.
    net = _network("cubemap")
    x = _random("cubemap", 3, 8)
    act = _symmetry("cubemap")
    assert _relative(net(act(x, 1)), act(net(x), 1)) > 0.05


def test_healpix_quarter_turn_needs_no_in_face_transform() -> None:
    # Every HEALPix face maps onto another with the same in-face frame, so even per-face
    # zero padding and generic kernels commute with the quarter turn.
    net = _network("healpix", mode="zeros")
    x = _random("healpix", 3, 8)
    act = _symmetry("healpix")
    assert _relative(net(act(x, 1)), act(net(x), 1)) < 1e-12


def test_equirect_zero_padding_breaks_roll_equivariance() -> None:
    x = _random("equirect", 3, 8)
    act = _symmetry("equirect")
    errors = {
        mode: _relative(_network("equirect", mode)(act(x, 3)), act(_network("equirect", mode)(x), 3))
        for mode in ("sphere", "lon_circular", "zeros")
    }
    assert errors["sphere"] < 1e-12 and errors["lon_circular"] < 1e-12
    assert errors["zeros"] > 1e-2


def test_strided_equirect_network_commutes_with_rolls_by_the_stride() -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        geoconv.build_op("conv", 2, 4, grid="equirect", stride=2),
        geoconv.build_op("max_pool", 4, grid="equirect", kernel_size=2),
        geoconv.build_op("conv", 4, 4, grid="equirect"),
    ).double()
    x = _random("equirect", 2, 16)
    y = net(x)
    for shift in (4, 8, 12):
        shifted = net(torch.roll(x, shift, dims=-1))
        torch.testing.assert_close(shifted, torch.roll(y, shift // 4, dims=-1), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("nside", [2, 4, 8])
def test_healpix_avg_pool_is_the_nested_hierarchy(nside: int) -> None:
    healpy = pytest.importorskip("healpy")
    from geoconv.grids import healpix

    rng = np.random.default_rng(0)
    flat = rng.standard_normal(12 * nside**2)
    faces = healpix.nest_to_faces(torch.from_numpy(flat)).reshape(1, 1, 12, nside, nside)
    pooled = geoconv.build_op("avg_pool", 1, grid="healpix", kernel_size=2)(faces)
    assert pooled.shape == (1, 1, 12, nside // 2, nside // 2)
    expected = healpy.ud_grade(flat, nside // 2, order_in="NESTED", order_out="NESTED")
    np.testing.assert_allclose(healpix.faces_to_nest(pooled[0, 0]).numpy(), expected, rtol=1e-12)
    # max pooling takes the largest of the four NESTED children 4p .. 4p + 3.
    maxed = geoconv.build_op("max_pool", 1, grid="healpix", kernel_size=2)(faces)
    np.testing.assert_array_equal(healpix.faces_to_nest(maxed[0, 0]).numpy(), flat.reshape(-1, 4).max(axis=1))


@pytest.mark.parametrize("nside", [2, 4])
def test_healpix_nearest_upsample_copies_the_parent(nside: int) -> None:
    healpy = pytest.importorskip("healpy")
    from geoconv.grids import healpix

    flat = np.random.default_rng(1).standard_normal(12 * nside**2)
    faces = healpix.nest_to_faces(torch.from_numpy(flat)).reshape(1, 1, 12, nside, nside)
    up = geoconv.build_op("upsample", 1, grid="healpix", mode="nearest")(faces)
    expected = healpy.ud_grade(flat, 2 * nside, order_in="NESTED", order_out="NESTED")
    np.testing.assert_array_equal(healpix.faces_to_nest(up[0, 0]).numpy(), expected)


@pytest.mark.parametrize("grid", SPHERES)
def test_stride_two_gives_the_next_coarser_grid(grid: str) -> None:
    x = _random(grid, 2, 8)
    conv = geoconv.build_op("conv", 2, 3, grid=grid, stride=2).double()
    y = conv(x)
    assert tuple(y.shape) == get_grid(grid).shape(2, 3, 4)
    get_grid(grid).check(y)
    up = geoconv.build_op("conv_transpose", 3, 2, grid=grid, stride=2).double()
    assert tuple(up(y).shape) == tuple(x.shape)


@pytest.mark.parametrize("grid", SPHERES)
@pytest.mark.parametrize(("kernel", "stride"), [(3, 1), (3, 2), (4, 2)])
def test_conv_transpose_is_the_adjoint_of_conv_with_spherical_padding(grid: str, kernel: int, stride: int) -> None:
    params = dict(kernel_size=kernel, stride=stride, bias=False)
    conv = geoconv.build_op("conv", 3, 5, grid=grid, **params).double()
    transpose = geoconv.build_op("conv_transpose", 5, 3, grid=grid, **params).double()
    assert conv.padding_mode == transpose.padding_mode == OWN_MODE[grid]
    with torch.no_grad():
        transpose.weight.copy_(conv.weight)
    x = _random(grid, 3, 8, seed=1)
    y = torch.randn(conv(x).shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    left = (conv(x) * y).sum()
    right = (x * transpose(y)).sum()
    torch.testing.assert_close(left, right, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("grid", SPHERES)
def test_bilinear_upsampling_reads_across_face_borders(grid: str) -> None:
    """A linear function of the unit vector is reproduced better across borders than per face."""
    spherical = get_grid(grid)
    coarse, fine = 8, 16
    field = lambda v: torch.from_numpy(v @ np.array([0.3, -0.5, 0.8]))  # noqa: E731
    x = field(spherical.vectors(coarse)).reshape(1, 1, *spherical.shape(1, 1, coarse)[2:])
    exact = field(spherical.vectors(fine))
    up = geoconv.build_op("upsample", 1, grid=grid)(x)[0, 0]
    # The reference: the same upsampling with each face on its own (torch's edge clamp).
    clamped = torch.nn.functional.interpolate(spherical.to_planes(x), scale_factor=2, mode="bilinear")
    per_face = spherical.from_planes(clamped, batch=1)[0, 0]
    error, error_per_face = (float((u - exact).abs().max()) for u in (up, per_face))
    assert error < error_per_face


@pytest.mark.parametrize("grid", SPHERES)
def test_planar_modes_are_accepted_as_baselines(grid: str) -> None:
    x = _random(grid, 2, 4)
    for mode in ("zeros", "replicate", "circular"):
        conv = geoconv.build_op("conv", 2, 2, grid=grid, padding_mode=mode).double()
        assert conv(x).shape == x.shape
    with pytest.raises(geoconv.GeoconvError, match="did you mean"):
        geoconv.build_op("conv", 2, 2, grid=grid, padding_mode=OWN_MODE[grid][:-1])


@pytest.mark.parametrize("nside", [2, 4, 8])
def test_healpix_stride_two_conv_combines_the_nested_children(nside: int) -> None:
    from geoconv.grids import healpix

    conv = geoconv.build_op("conv", 1, 1, grid="healpix", kernel_size=2, stride=2, bias=False).double()
    flat = np.random.default_rng(3).standard_normal(12 * nside**2)
    faces = healpix.nest_to_faces(torch.from_numpy(flat)).reshape(1, 1, 12, nside, nside)
    out = healpix.faces_to_nest(conv(faces).detach()[0, 0]).numpy()
    # Child 4p + di + 2 dj of parent p sits at in-face offset (di, dj) (healpy's x, y bits).
    w = conv.weight.detach()[0, 0].numpy()
    children = flat.reshape(-1, 4)
    expected = w[0, 0] * children[:, 0] + w[1, 0] * children[:, 1] + w[0, 1] * children[:, 2] + w[1, 1] * children[:, 3]
    np.testing.assert_allclose(out, expected, rtol=1e-12)
