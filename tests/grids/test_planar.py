"""Planar padding against torch.nn.functional.pad and hand-written expectations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from geoconv.errors import GeoconvError, ParameterError, ShapeError, UnknownNameError
from geoconv.grids import check_pad_widths, get_grid, list_grids, planar


def test_hand_written_rows() -> None:
    x = torch.tensor([[[[1.0, 2.0, 3.0, 4.0]]]])
    expect = {
        "zeros": [0, 0, 1, 2, 3, 4, 0, 0],
        "reflect": [3, 2, 1, 2, 3, 4, 3, 2],
        "replicate": [1, 1, 1, 2, 3, 4, 4, 4],
        "circular": [3, 4, 1, 2, 3, 4, 1, 2],
    }
    for mode, row in expect.items():
        out = planar.pad(x, (0, 0, 2, 2), mode)
        assert out.flatten().tolist() == [float(v) for v in row], mode
    assert planar.pad(x, (0, 0, 1, 1), "constant", value=-7).flatten().tolist() == [-7, 1, 2, 3, 4, -7]


@settings(max_examples=80, deadline=None)
@given(
    height=st.integers(1, 6),
    width=st.integers(1, 6),
    widths=st.tuples(*[st.integers(0, 6)] * 4),
    mode=st.sampled_from(["zeros", "constant", "reflect", "replicate", "circular"]),
)
def test_matches_torch_or_raises(height: int, width: int, widths: tuple, mode: str) -> None:
    x = torch.randn(2, 3, height, width, dtype=torch.float64)
    top, bottom, left, right = widths
    too_wide = (mode == "reflect" and (max(top, bottom) >= height or max(left, right) >= width)) or (
        mode == "circular" and (max(top, bottom) > height or max(left, right) > width)
    )
    if too_wide and any(widths):
        with pytest.raises(ParameterError, match=f"{mode} padding needs each width"):
            planar.pad(x, widths, mode)
        return
    out = planar.pad(x, widths, mode, value=0.5)
    torch_mode = "constant" if mode in ("zeros", "constant") else mode
    fill = 0.5 if mode == "constant" else 0.0
    if torch_mode == "constant":
        expected = F.pad(x, (left, right, top, bottom), mode="constant", value=fill)
    else:
        expected = F.pad(x, (left, right, top, bottom), mode=torch_mode)
    assert torch.equal(out, expected)


def test_widths_forms() -> None:
    assert check_pad_widths(2) == (2, 2, 2, 2)
    assert check_pad_widths((1, 3)) == (1, 1, 3, 3)
    assert check_pad_widths([0, 1, 2, 3]) == (0, 1, 2, 3)
    with pytest.raises(ParameterError, match=r"widths\[2\] must be an integer >= 0, got -1"):
        check_pad_widths((0, 0, -1, 0))
    with pytest.raises(ParameterError, match="4-tuple"):
        check_pad_widths((1, 2, 3))


def test_layout_and_mode_errors() -> None:
    grid = get_grid("planar")
    with pytest.raises(ShapeError, match=r"\(B, C, H, W\).*3-D tensor of shape \(1, 4, 4\)"):
        grid.pad(torch.zeros(1, 4, 4), 1)
    with pytest.raises(ShapeError, match="H and W >= 1"):
        grid.pad(torch.zeros(1, 1, 0, 4), 1)
    with pytest.raises(UnknownNameError, match="did you mean 'circular'"):
        grid.pad(torch.zeros(1, 1, 4, 4), 1, "circle")


def test_grid_lookup() -> None:
    assert "planar" in list_grids()
    assert get_grid(get_grid("planar")) is get_grid("planar")
    with pytest.raises(GeoconvError, match="did you mean 'planar'"):
        get_grid("planr")
    assert get_grid("planar").shape(2, 3, 5) == (2, 3, 5, 5)


def test_gradient_counts_each_pixel_as_often_as_numpy_pads_it() -> None:
    # numpy's pad of an index map is an independent model of which pixel lands where.
    numpy_modes = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}
    height, width, widths = 5, 4, (1, 2, 3, 1)
    index = np.arange(height * width).reshape(height, width)
    for mode, numpy_mode in numpy_modes.items():
        x = torch.randn(1, 1, height, width, dtype=torch.float64, requires_grad=True)
        planar.pad(x, widths, mode).sum().backward()
        padded = np.pad(index, ((widths[0], widths[1]), (widths[2], widths[3])), mode=numpy_mode)
        counts = np.bincount(padded.ravel(), minlength=height * width).reshape(height, width)
        assert np.array_equal(x.grad[0, 0].numpy(), counts.astype(float)), mode
