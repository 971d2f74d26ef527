"""``conv(hexagonal=True)`` on the icosahedral grid: a 7-tap kernel, checked against an explicit neighbour sum.

The reference sums, in float64 and with Python loops over the taps, the centre and the 6
mesh neighbours of every pixel, read from the ``ico``-padded input (the padding is checked
against an independent icosphere in ``tests/grids/test_icosahedral.py``); it never calls
``F.conv2d`` nor reads the kernel's two non-neighbour taps.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import geoconv
from geoconv.errors import ParameterError
from geoconv.grids.icosahedral import GRID, HEX_OFFSETS
from geoconv.ops._halo import conv_path
from geoconv.ops.conv import ConvConfig

TAPS = [(0, 0), *HEX_OFFSETS]  # (row, column) offsets from the centre


def _reference(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: int, groups: int
) -> torch.Tensor:
    """``y[o, p] = b_o + sum_c sum_taps w[o, c, tap] x[c, p + tap]`` on the 7 taps, "same" padding of TensorFlow."""
    n = x.shape[-2]
    # TensorFlow's "same" for a 3x3 kernel: 1 on each side at stride 1; 0 before and 1 after at stride 2 (n even).
    before = 1 if stride == 1 else 0
    padded = GRID.pad(x, (before, 1, before, 1))
    out_h, out_w = n // stride, 2 * n // stride
    b, c_in = x.shape[:2]
    c_out = weight.shape[0]
    per_group_in, per_group_out = c_in // groups, c_out // groups
    y = torch.zeros(b, c_out, 5, out_h, out_w, dtype=torch.float64)
    for o in range(c_out):
        group = o // per_group_out
        for c in range(per_group_in):
            channel = group * per_group_in + c
            for di, dj in TAPS:
                rows = slice(1 + di, 1 + di + stride * (out_h - 1) + 1, stride)
                cols = slice(1 + dj, 1 + dj + stride * (out_w - 1) + 1, stride)
                y[:, o] += weight[o, c, 1 + di, 1 + dj] * padded[:, channel, :, rows, cols]
        if bias is not None:
            y[:, o] += bias[o]
    return y


@settings(max_examples=12, deadline=None)
@given(
    level=st.integers(1, 3),
    stride=st.sampled_from([1, 2]),
    groups=st.sampled_from([1, 2]),
    bias=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_hexagonal_conv_is_the_seven_tap_neighbour_sum(
    level: int, stride: int, groups: int, bias: bool, seed: int
) -> None:
    torch.manual_seed(seed)
    conv = geoconv.build_op(
        "conv", 2, 4, grid="icosahedral", hexagonal=True, stride=stride, groups=groups, bias=bias
    ).double()
    with torch.no_grad():  # the non-neighbour taps set to garbage: the forward pass must ignore them
        conv.weight[..., 0, 0] = 1e3
        conv.weight[..., 2, 2] = -1e3
    x = torch.randn(GRID.shape(2, 2, level), dtype=torch.float64)
    expected = _reference(x, conv.weight.detach(), None if conv.bias is None else conv.bias.detach(), stride, groups)
    for path in ("padded", "halo"):
        with conv_path(path):
            torch.testing.assert_close(conv(x), expected, rtol=0, atol=1e-12)


def test_masked_taps_start_at_zero_and_stay_zero_through_optimiser_steps() -> None:
    for make in (
        lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=1e-2),
        lambda p: torch.optim.AdamW(p, lr=1e-2, weight_decay=1e-1),
    ):
        torch.manual_seed(0)
        conv = geoconv.build_op("conv", 3, 5, grid="icosahedral", hexagonal=True)
        assert torch.equal(conv.hex_mask, torch.as_tensor(GRID.hex_mask, dtype=torch.float32))
        masked = conv.hex_mask == 0
        assert int(masked.sum()) == 2 and bool((conv.weight[..., masked] == 0).all())
        assert bool((conv.weight[..., ~masked] != 0).all())
        optimiser = make(conv.parameters())
        for _ in range(3):
            optimiser.zero_grad()
            conv(torch.randn(GRID.shape(2, 3, 2))).pow(2).mean().backward()
            assert bool((conv.weight.grad[..., masked] == 0).all()) and bool(
                conv.weight.grad[..., ~masked].abs().sum() > 0
            )
            optimiser.step()
        assert bool((conv.weight[..., masked] == 0).all())


def test_a_square_kernels_state_dict_loads_and_its_masked_taps_are_ignored() -> None:
    torch.manual_seed(0)
    square = geoconv.build_op("conv", 2, 3, grid="icosahedral").double()
    hexagonal = geoconv.build_op("conv", 2, 3, grid="icosahedral", hexagonal=True).double()
    hexagonal.load_state_dict(square.state_dict())
    assert set(hexagonal.state_dict()) == {"weight", "bias"}  # the mask is the grid's, not state
    x = torch.randn(GRID.shape(1, 2, 2), dtype=torch.float64)
    with torch.no_grad():
        square.weight[..., 0, 0] = 0
        square.weight[..., 2, 2] = 0
    torch.testing.assert_close(hexagonal(x), square(x), rtol=0, atol=1e-13)
    assert "hexagonal=True" in repr(hexagonal) and "hexagonal" not in repr(square)


def test_gradients_and_gated_conv() -> None:
    conv = geoconv.build_op("conv", 1, 2, grid="icosahedral", hexagonal=True).double()
    x = torch.randn(GRID.shape(1, 1, 1), dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(conv, (x,))
    gated = geoconv.build_op("gated_conv", 2, 3, grid="icosahedral", hexagonal=True)
    assert bool((gated.conv.weight[..., 0, 0] == 0).all()) and gated(torch.randn(GRID.shape(1, 2, 2))).shape == (
        1,
        3,
        5,
        4,
        8,
    )


@pytest.mark.parametrize("grid", ["planar", "equirect", "cubemap", "healpix"])
def test_hexagonal_on_a_grid_without_a_hexagonal_lattice_is_refused(grid: str) -> None:
    expected = r"a hexagonal lattice \(a grid with a hex_mask: .*'icosahedral'.*\)"
    message = rf"conv: hexagonal=True needs a grid whose charts are {expected}, got grid '{grid}'"
    with pytest.raises(ParameterError, match=message):
        geoconv.build_op("conv", 2, 3, grid=grid, hexagonal=True)


@pytest.mark.parametrize(("kernel_size", "shown"), [(5, r"\(5, 5\)"), ((3, 5), r"\(3, 5\)"), (1, r"\(1, 1\)")])
def test_hexagonal_with_another_kernel_size_is_refused(kernel_size: object, shown: str) -> None:
    with pytest.raises(ParameterError, match=rf"hexagonal=True needs kernel_size=3 .*, got kernel_size={shown}"):
        geoconv.build_op("conv", 2, 3, grid="icosahedral", hexagonal=True, kernel_size=kernel_size)


def test_hexagonal_must_be_a_bool() -> None:
    with pytest.raises(ParameterError, match=r"conv.hexagonal must be of type bool, got 'yes' \(str\)"):
        geoconv.build_op("conv", 2, 3, grid="icosahedral", hexagonal="yes")
    with pytest.raises(ParameterError, match=r"hexagonal must be True or False, got 1 \(int\)"):
        ConvConfig(hexagonal=1)  # type: ignore[arg-type]
