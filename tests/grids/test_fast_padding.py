"""The compiled padding plans against the literal table gather, on every spherical grid and mode."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from geoconv.errors import GeoconvError
from geoconv.grids import get_grid
from geoconv.grids._blocks import compile_padding
from geoconv.grids._gather import PadTable
from geoconv.grids.sphere import reference_padding

MODES = [("equirect", "sphere"), ("equirect", "lon_circular"), ("cubemap", "cube"), ("healpix", "healpix")]


@st.composite
def cases(draw: st.DrawFn) -> tuple[str, str, int, tuple[int, int, int, int]]:
    grid, mode = draw(st.sampled_from(MODES))
    size = draw(st.sampled_from([1, 2, 4, 8]))
    # Widths up to the face size: equirect faces are H x 2H.
    height_limit, width_limit = size, (2 * size if grid == "equirect" else size)
    top, bottom = (draw(st.integers(0, height_limit)) for _ in range(2))
    left, right = (draw(st.integers(0, width_limit)) for _ in range(2))
    return grid, mode, size, (top, bottom, left, right)


@settings(max_examples=60, deadline=None)
@given(case=cases(), seed=st.integers(0, 2**16))
def test_fast_path_is_the_table(case: tuple[str, str, int, tuple[int, int, int, int]], seed: int) -> None:
    grid_name, mode, size, widths = case
    grid = get_grid(grid_name)
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(grid.shape(2, 3, size), dtype=torch.float64, generator=generator)
    with reference_padding():
        expected = grid.pad(x, widths, mode)
    padded = grid.pad(x, widths, mode)
    assert torch.equal(padded, expected)  # copies and the same weighted sums: bit for bit
    y = torch.randn(expected.shape, dtype=torch.float64, generator=generator)
    with reference_padding():
        expected_adjoint = grid.pad_adjoint(y, widths, mode, x)
    adjoint = grid.pad_adjoint(y, widths, mode, x)
    torch.testing.assert_close(adjoint, expected_adjoint, rtol=0, atol=1e-12)
    # The two are each other's adjoint: <pad x, y> = <x, pad* y>.
    assert abs(float((padded * y).sum() - (x * adjoint).sum())) <= 1e-10


@pytest.mark.parametrize(("grid_name", "mode"), MODES, ids=[f"{g}-{m}" for g, m in MODES])
def test_pad_to_planes_needs_no_transposing_copy(grid_name: str, mode: str) -> None:
    grid = get_grid(grid_name)
    x = torch.randn(grid.shape(2, 3, 4), dtype=torch.float64)
    planes = grid.pad_to_planes(x, (1, 2, 2, 1), mode)
    assert torch.equal(planes, grid.to_planes(grid.pad(x, (1, 2, 2, 1), mode)))
    assert planes.is_contiguous()  # (B * F, C, H', W') is the storage itself, not a copy of it


@pytest.mark.parametrize(("grid_name", "mode"), MODES, ids=[f"{g}-{m}" for g, m in MODES])
def test_gradients_of_every_order(grid_name: str, mode: str) -> None:
    grid = get_grid(grid_name)
    x = torch.randn(grid.shape(1, 2, 2), dtype=torch.float64, requires_grad=True)
    for widths in ((1, 1, 1, 1), (2, 1, 0, 1)):
        assert torch.autograd.gradcheck(lambda t, w=widths: grid.pad(t, w, mode), (x,))
        assert torch.autograd.gradgradcheck(lambda t, w=widths: grid.pad(t, w, mode), (x,))
        y = torch.randn(grid.pad(x, widths, mode).shape, dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradcheck(lambda t, w=widths: grid.pad_adjoint(t, w, mode, x.detach()), (y,))


def test_channels_last_stays_channels_last() -> None:
    grid = get_grid("equirect")
    x = torch.randn(2, 3, 4, 8, dtype=torch.float64)
    fast = grid.pad(x.to(memory_format=torch.channels_last), 2)
    assert fast.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(fast, grid.pad(x, 2))


def test_plans_are_a_few_block_copies() -> None:
    # Width 1: the interior, one strip per face side (merged over faces where the faces
    # repeat), and single-pixel corners as points; never a pixel-by-pixel gather.
    for grid_name, size, most_blocks, most_points in (
        ("equirect", (16, 32), 8, 4),
        ("cubemap", 16, 24, 6 * 4),
        ("healpix", 16, 24, 12 * 4),
    ):
        grid = get_grid(grid_name)
        plan = compile_padding(grid.pad_table(size, (1, 1, 1, 1), grid.default_padding_mode), (1, 1, 1, 1), "cpu")
        points = 0 if plan.points is None else len(plan.points.target[0])
        assert len(plan.blocks) <= most_blocks and points <= most_points, (grid_name, len(plan.blocks), points)


def test_integer_tensors_pad_where_nothing_is_averaged() -> None:
    x = torch.arange(2 * 4 * 8).reshape(1, 2, 4, 8)
    with reference_padding():
        expected = get_grid("equirect").pad(x, 1)
    assert torch.equal(get_grid("equirect").pad(x, 1), expected)
    with pytest.raises(GeoconvError, match="floating-point"):
        get_grid("healpix").pad(torch.zeros(1, 1, 12, 2, 2, dtype=torch.int64), 1)


def test_a_table_whose_interior_moves_is_refused() -> None:
    index = np.array([[0, 2, 1, 2]])  # the interior (positions 1..2) is reversed: not a padding
    with pytest.raises(AssertionError, match="interior"):
        compile_padding(PadTable.from_index(index, (1, 3)), (0, 0, 1, 0), torch.device("cpu"))


def test_blocks_split_where_the_source_jumps() -> None:
    # Beyond the north pole, row -1 is row 0 rolled by W/2: one strip in two halves.
    table = get_grid("equirect").pad_table((4, 8), (1, 0, 0, 0), "sphere")
    plan = compile_padding(table, (1, 0, 0, 0), torch.device("cpu"))
    assert plan.points is None and len(plan.blocks) == 2
    x = torch.arange(32.0).reshape(1, 1, 4, 8)
    assert torch.equal(plan.apply(x)[0, 0, 0], torch.roll(x[0, 0, 0], 4))
