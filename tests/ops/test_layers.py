"""Every op describes its own geometry: ``layers()`` against closed formulas and the gradient's support.

References written here: TensorFlow's "same" split in closed form, torch's pooled size, and
the support of an output pixel's autograd gradient (a fact about the computation, not about
the description).
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from geoconv import build_op, get_op, list_ops
from geoconv.errors import GeoconvError, ParameterError, ShapeError
from geoconv.ops._common import GridOp, InputSizeRequired
from geoconv.sizes import Layer, receptive_field


def tf_left(n: int, k: int, s: int, d: int = 1) -> int:
    """TensorFlow's "same": total padding max((ceil(n/s) - 1) s + d(k - 1) + 1 - n, 0), the smaller half first."""
    total = max((math.ceil(n / s) - 1) * s + d * (k - 1) + 1 - n, 0)
    return total // 2


def support(module: torch.nn.Module, x: torch.Tensor, index: tuple[int, ...], inputs: int = 8) -> list[tuple[int, int]]:
    """First and last index with a nonzero gradient of output ``index`` (summed over channels), per dim after C."""
    gen = torch.Generator().manual_seed(0)
    xs = torch.randn(inputs, *x.shape[1:], generator=gen, dtype=torch.float64).requires_grad_(True)
    y = module.double()(xs)
    (grad,) = torch.autograd.grad(y[(slice(None), slice(None), *index)].sum(), xs)
    mask = grad.abs().sum(dim=(0, 1)) > 0
    bounds = []
    for dim in range(mask.dim()):
        hit = mask.flatten(0, dim - 1).any(0) if dim else mask
        hit = hit.flatten(1).any(1) if hit.dim() > 1 else hit
        where = hit.nonzero().flatten()
        bounds.append((int(where[0]), int(where[-1])))
    return bounds


# (op, params, input size, expected layer along the columns from the closed formula)
CONV_CASES = [
    ("conv", {}, (9, 10), Layer(3, 1, 1, 1)),
    ("conv", {"kernel_size": 4}, (9, 10), Layer(4, 1, tf_left(10, 4, 1), 1)),
    ("conv", {"kernel_size": 3, "stride": 2}, (9, 10), Layer(3, 2, tf_left(10, 3, 2), 1)),
    ("conv", {"kernel_size": 5, "stride": 3, "dilation": 2}, (17, 16), Layer(5, 3, tf_left(16, 5, 3, 2), 2)),
    ("conv", {"kernel_size": 3, "padding": (1, 2, 0, 2)}, (9, 10), Layer(3, 1, 0, 1)),
    ("conv", {"kernel_size": 3, "padding": "valid", "padding_mode": "circular"}, (9, 10), Layer(3, 1, 0, 1)),
    ("gated_conv", {"kernel_size": 5}, (9, 10), Layer(5, 1, 2, 1)),
    ("max_pool", {"kernel_size": 3, "stride": 2, "padding": 1}, (9, 10), Layer(3, 2, 1, 1)),
    ("max_pool", {"kernel_size": 2, "dilation": 2, "padding_mode": "reflect"}, (9, 10), Layer(2, 2, 0, 2)),
    ("avg_pool", {"kernel_size": 3, "stride": 1, "padding": 1}, (9, 10), Layer(3, 1, 1, 1)),
    ("blur_pool", {"filter_size": 5}, (9, 10), Layer(5, 2, tf_left(10, 5, 2), 1)),
    ("blur_pool", {"filter_size": 4, "stride": 1}, (9, 10), Layer(4, 1, 1, 1)),
]


@pytest.mark.parametrize(("name", "params", "size", "expected"), CONV_CASES)
def test_layers_are_the_closed_formula_and_output_size_is_the_forward(name, params, size, expected) -> None:
    op = build_op(name, 2, grid="planar", **params)
    assert op.layers(size, axis=-1) == [expected]
    y = op(torch.randn(1, 2, *size))
    y = y[0] if isinstance(y, tuple) else y
    assert op.output_size(size) == tuple(y.shape[-2:])


# A max keeps one tap per input: its gradient's support is not the window.
LINEAR_CASES = [case for case in CONV_CASES if case[0] != "max_pool"]


@pytest.mark.parametrize(("name", "params", "size", "expected"), LINEAR_CASES)
def test_the_layers_receptive_field_is_the_gradients_support(name, params, size, expected) -> None:
    op = build_op(name, 2, grid="planar", **params)
    out = op.output_size(size)
    index = (out[0] // 2, out[1] // 2)
    got = support(op, torch.zeros(1, 2, *size), index)
    for axis in (-2, -1):
        rf = receptive_field(op.layers(size, axis=axis))
        first, last = rf.bounds(index[axis])
        assert got[axis] == (max(first, 0), min(last, size[axis] - 1))


def test_aps_pool_is_its_blur_then_a_one_tap_stride() -> None:
    op = build_op("aps_pool", 1, filter_size=3, stride=(2, 3))
    assert op.layers(axis=-2) == [Layer(3, 1, 1, 1), Layer(1, 2, 0, 1)]
    assert op.layers(axis=-1) == [Layer(3, 1, 1, 1), Layer(1, 3, 0, 1)]
    assert op.output_size((8, 9)) == tuple(op(torch.randn(1, 1, 8, 9)).shape[-2:]) == (4, 3)


def test_same_padding_with_a_stride_needs_the_input_size() -> None:
    op = build_op("conv", 1, 1, stride=2)
    with pytest.raises(InputSizeRequired, match=r"input_size=\(H, W\)"):
        op.layers()
    assert build_op("conv", 1, 1, stride=2, padding=1).layers() == [Layer(3, 2, 1, 1)]  # explicit: no size needed
    assert op.layers((8, 8)) == [Layer(3, 2, tf_left(8, 3, 2), 1)]
    with pytest.raises(ParameterError, match="axis"):
        op.layers((8, 8), axis=0)


@pytest.mark.parametrize(("name", "why"), [("conv_transpose", "upsamples"), ("max_unpool", "upsamples")])
def test_upsampling_ops_refuse_and_say_why(name: str, why: str) -> None:
    with pytest.raises(ParameterError, match=why):
        build_op(name, 2).layers()


@pytest.mark.parametrize("name", ["upsample", "downsample"])
def test_resampling_ops_refuse_and_say_why(name: str) -> None:
    with pytest.raises(ParameterError, match="resamples"):
        build_op(name, 2).layers()


def test_spectral_conv_is_not_local() -> None:
    with pytest.raises(ParameterError, match="not local"):
        build_op("spectral_conv", 2, grid="equirect").layers()


@pytest.mark.parametrize(("name", "params", "hops"), [("neighbour_conv", {}, 1), ("cheb_conv", {"K": 3}, 2)])
def test_healpix_graph_ops_reach_their_hops_inside_a_face(name: str, params: dict, hops: int) -> None:
    # The gradient of a pixel well inside face 4 spans the (2 hops + 1)-square of the layers.
    op = build_op(name, 1, 1, grid="healpix", **params)
    layers = op.layers()
    assert receptive_field(layers).size == 2 * hops + 1
    got = support(op, torch.zeros(1, 1, 12, 8, 8), (4, 4, 4))
    assert got == [(4, 4), (4 - hops, 4 + hops), (4 - hops, 4 + hops)]
    assert op.output_size((8, 8)) == (8, 8)


def test_cheb_conv_of_order_one_is_pointwise() -> None:
    assert build_op("cheb_conv", 1, 1, grid="healpix", K=1).layers() == [Layer(1)]


def test_every_builtin_op_describes_its_geometry_or_says_why_not() -> None:
    for name in list_ops():
        if get_op(name).source != "geoconv":
            continue  # an installed plugin's op need not describe itself
        grids = get_op(name).grids
        op = build_op(name, 2, grid="healpix" if "healpix" in grids else grids[0])
        try:
            layers = op.layers((8, 8))
        except GeoconvError as err:
            assert str(err), name
            continue
        assert layers and all(isinstance(layer, Layer) for layer in layers), name


# --------------------------------------------------------------------------- GridOp.run_planar


def test_planar_pads_runs_the_kernel_and_unfolds_on_every_face() -> None:
    # A 3x3 mean after the cube's padding keeps a constant map constant on all 6 faces; after
    # zero padding the corners of each face see 4 of 9 ones.
    x = torch.ones(2, 3, 6, 4, 4)
    cube = GridOp("cubemap", op_name="box")
    y = cube.run_planar(x, lambda planes, _: F.avg_pool2d(planes, 3, 1), (1, 1, 1, 1), (4, 4))
    assert y.shape == x.shape
    torch.testing.assert_close(y, x)
    zeros = GridOp("cubemap", "zeros", op_name="box")
    y = zeros.run_planar(x, lambda planes, _: F.avg_pool2d(planes, 3, 1), (1, 1, 1, 1), (4, 4))
    assert y[0, 0, 3, 0, 0].item() == pytest.approx(4 / 9) and y[0, 0, 3, 1, 1].item() == pytest.approx(1.0)


def test_planar_crops_to_the_promised_size_and_refuses_faces_the_grid_rejects() -> None:
    op = GridOp("planar", op_name="demo")
    x = torch.arange(16.0).view(1, 1, 4, 4)
    y = op.run_planar(x, lambda planes, padding: planes, (0, 0, 0, 0), (3, 2))
    assert torch.equal(y, x[..., :3, :2])
    with pytest.raises(ShapeError, match=r"demo on grid 'healpix'.*output faces 3x3.*stride=3"):
        GridOp("healpix", op_name="demo").run_planar(
            torch.zeros(1, 1, 12, 8, 8), lambda p, _: p[..., ::3, ::3], (0, 0, 0, 0), (3, 3), settings={"stride": 3}
        )


def test_planar_implicit_padding_is_left_to_the_kernel() -> None:
    op = GridOp("planar", op_name="demo")
    x = torch.randn(1, 2, 5, 5)
    seen = []

    def kernel(planes: torch.Tensor, padding: tuple[int, int]) -> torch.Tensor:
        seen.append((tuple(planes.shape), padding))
        return F.max_pool2d(planes, 3, 1, padding)

    y = op.run_planar(x, kernel, (1, 1, 1, 1), (5, 5), implicit=True)
    assert seen == [((1, 2, 5, 5), (1, 1))]
    torch.testing.assert_close(y, F.max_pool2d(x, 3, 1, 1))
    with pytest.raises(ParameterError, match="symmetric"):
        op.run_planar(x, kernel, (1, 0, 1, 1), (5, 5), implicit=True)
