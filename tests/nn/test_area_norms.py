"""Area-weighted norm statistics on spherical grids against float64 loops; unchanged on the plane."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from geoconv.errors import ShapeError
from geoconv.nn import BatchNorm, GroupNorm, InstanceNorm, make_norm

EPS = 1e-5


def _band_areas(height: int, width: int) -> torch.Tensor:
    """Equirect pixel areas (H, W) from the band formula, float64."""
    rows = [
        2 * math.pi / width * (math.cos(i * math.pi / height) - math.cos((i + 1) * math.pi / height))
        for i in range(height)
    ]
    return torch.tensor(rows, dtype=torch.float64)[:, None].expand(height, width)


def _weighted(x: torch.Tensor, a: torch.Tensor, dims: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    # Weighted moments by explicit sums: every pixel counts by its area, every sample alike.
    w = a.expand_as(x)
    mean = (x * w).sum(dims, keepdim=True) / w.sum(dims, keepdim=True)
    var = ((x - mean) ** 2 * w).sum(dims, keepdim=True) / w.sum(dims, keepdim=True)
    return mean, var


@pytest.mark.parametrize("kind", ["batch", "instance", "group"])
def test_planar_grid_changes_nothing(kind: str) -> None:
    torch.manual_seed(0)
    x = torch.randn(3, 4, 5, 6)
    plain, flat = make_norm(kind, 4, groups=2), make_norm(kind, 4, groups=2, grid="planar")
    torch.testing.assert_close(flat(x), plain(x), rtol=0, atol=0)
    assert flat.state_dict().keys() == plain.state_dict().keys()
    for key, value in plain.state_dict().items():
        torch.testing.assert_close(flat.state_dict()[key], value, rtol=0, atol=0)


def test_weighted_batch_norm_against_the_formula_with_running_statistics() -> None:
    x = torch.randn(3, 2, 6, 12, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    norm = BatchNorm(2, grid="equirect").double()
    with torch.no_grad():
        norm.weight.copy_(torch.tensor([1.5, -0.5]))
        norm.bias.copy_(torch.tensor([0.25, 2.0]))
    mean, var = _weighted(x, _band_areas(6, 12), (0, 2, 3))
    gamma, beta = norm.weight.detach().view(1, 2, 1, 1), norm.bias.detach().view(1, 2, 1, 1)
    expected = gamma * (x - mean) / torch.sqrt(var + EPS) + beta
    torch.testing.assert_close(norm(x), expected, rtol=1e-12, atol=1e-12)
    n = 3 * 6 * 12  # torch's unbiased running variance: n / (n - 1)
    torch.testing.assert_close(norm.running_mean, 0.1 * mean.flatten(), rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(norm.running_var, 0.9 + 0.1 * var.flatten() * n / (n - 1), rtol=1e-12, atol=1e-14)
    norm.eval()
    rm, rv = norm.running_mean.view(1, 2, 1, 1), norm.running_var.view(1, 2, 1, 1)
    torch.testing.assert_close(norm(x), gamma * (x - rm) / torch.sqrt(rv + EPS) + beta, rtol=1e-12, atol=1e-12)
    assert set(norm.state_dict()) == set(nn.BatchNorm2d(2).state_dict())


def test_weighted_instance_norm_against_the_formula() -> None:
    x = torch.randn(2, 3, 8, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) + 4.0
    mean, var = _weighted(x, _band_areas(8, 16), (2, 3))
    y = InstanceNorm(3, grid="equirect")(x)
    torch.testing.assert_close(y, (x - mean) / torch.sqrt(var + EPS), rtol=1e-12, atol=1e-12)
    weighted_mean = (y * _band_areas(8, 16)).sum((2, 3)) / (4 * math.pi)
    assert float(weighted_mean.abs().max()) < 1e-12  # zero mean on the sphere, not over the pixels
    assert float(y.mean((2, 3)).abs().max()) > 1e-3


def test_weighted_group_norm_against_the_formula() -> None:
    x = torch.randn(2, 4, 4, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    grouped = x.reshape(2, 2, 2, 4, 8)  # (B, G, C/G, H, W): the group's channels and pixels together
    mean, var = _weighted(grouped, _band_areas(4, 8), (2, 3, 4))
    expected = ((grouped - mean) / torch.sqrt(var + EPS)).reshape_as(x)
    torch.testing.assert_close(GroupNorm(2, 4, grid="equirect").double()(x), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", ["batch", "instance", "group"])
def test_equal_area_healpix_matches_the_plain_statistics(kind: str) -> None:
    x = torch.randn(2, 4, 12, 2, 2, dtype=torch.float64)
    torch.testing.assert_close(
        make_norm(kind, 4, groups=2, grid="healpix").double()(x),
        make_norm(kind, 4, groups=2).double()(x),
        rtol=1e-10,
        atol=1e-12,
    )


def _soft_haar_rows(b: int) -> np.ndarray:
    """Driscoll-Healy / SOFT quadrature weights of the 2b beta rows (Kostelec-Rockmore), normalised to 1."""
    j = np.arange(2 * b)
    k = np.arange(b)
    sums = (np.sin((2 * j[:, None] + 1) * (2 * k[None, :] + 1) * np.pi / (4 * b)) / (2 * k[None, :] + 1)).sum(1)
    w = (2.0 / b) * np.sin(np.pi * (2 * j + 1) / (4 * b)) * sums
    return w / w.sum()


def test_the_so3_layout_is_normalised_with_the_haar_measure() -> None:
    # s2_conv maps the sphere to SO(3): a norm after it weights the beta rows by the SOFT
    # quadrature (the Haar measure), computed here from Kostelec & Rockmore's closed form.
    b = 3
    x = torch.randn(2, 3, 2 * b, 2 * b, 2 * b, dtype=torch.float64) + torch.linspace(0, 2, 2 * b)[:, None, None]
    y = make_norm("instance", 3, grid="equirect").double()(x)
    w = torch.from_numpy(_soft_haar_rows(b))[:, None, None] / (2 * b) ** 2
    mean = (y * w).sum(dim=(-3, -2, -1))
    var = (y.square() * w).sum(dim=(-3, -2, -1))
    torch.testing.assert_close(mean, torch.zeros_like(mean), atol=1e-10, rtol=0)
    torch.testing.assert_close(var, torch.ones_like(var), atol=1e-4, rtol=0)  # eps = 1e-5 in the denominator


def test_input_in_no_layout_of_the_grid_is_refused() -> None:
    with pytest.raises(ShapeError, match="weights pixels by the grid's quadrature"):
        make_norm("instance", 3, grid="healpix")(torch.randn(2, 3, 5, 7))
