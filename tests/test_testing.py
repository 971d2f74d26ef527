"""geoconv.testing: each assertion passes on good ops and modules and fails on broken ones.

A test op, registered for these tests, is a correct affine op (a 1x1 channel mix plus a
bias) unless its ``defect`` parameter switches on one way of breaking the contract; each
defect must make :func:`assert_op_contract` fail with the clause it breaks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest
import torch
from torch import nn

from geoconv import build_op
from geoconv.errors import GeoconvError, ParameterError, ShapeError, UnknownNameError
from geoconv.ops.registry import register_op, unregister_op
from geoconv.testing import assert_equivariant, assert_op_contract

OP = "testing_mix"


@dataclass
class MixConfig:
    """Attributes
    ----------
    defect : str
        Which clause of the contract to break ("none": none).
    """

    defect: str = "none"


class Mix(nn.Module):
    """A 1x1 channel mix with a bias on the plane; ``config.defect`` breaks it on purpose."""

    def __init__(self, in_channels: int, out_channels: int, grid: str = "planar", config: MixConfig | None = None):
        super().__init__()
        self.defect = (config or MixConfig()).defect
        self.in_channels = in_channels
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels))
        self.bias = nn.Parameter(torch.randn(out_channels))
        if self.defect == "unused parameter":
            self.unused = nn.Parameter(torch.zeros(1))
        if self.defect == "unsaved state":
            # Drawn at construction and not in state_dict: a reloaded module differs.
            self.register_buffer("noise", torch.randn(out_channels), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        defect = self.defect
        if defect == "empty batch crashes" and x.shape[0] == 0:
            raise IndexError("index 0 is out of bounds for dimension 0 with size 0")
        if defect == "accepts anything":
            x = x.reshape(-1, *x.shape[-3:])[:, : self.in_channels]  # makes something of any input
        elif defect == "vague error":
            if x.dim() != 4 or x.shape[1] != self.in_channels:
                raise ShapeError("the input has the wrong shape")
        elif defect != "runtime error on bad input" and (x.dim() != 4 or x.shape[1] != self.in_channels):
            raise ShapeError(f"x must have shape (B, {self.in_channels}, H, W), got {tuple(x.shape)}")
        if defect == "float32 only":
            x = x.float()  # a float64 module still computes (and returns) float32
        y = torch.einsum("oi,bihw->bohw", self.weight.to(x.dtype), x)
        y = y + self.bias[:, None, None].to(y.dtype)
        if defect == "mixes the batch":
            return y + y.mean(0, keepdim=True)
        if defect == "wrong layout":
            return y.flatten(2)
        if defect == "wrong channels":
            return y[:, :1]
        if defect == "not finite":
            return y / torch.zeros_like(y)
        if defect == "detached":
            return y.detach()
        if defect == "not affine":
            return y**2
        if defect == "unsaved state":
            return y + self.noise[:, None, None]
        if defect == "wrong dtype":
            return y.half()
        return y


@pytest.fixture(scope="module", autouse=True)
def mix_op():
    register_op(OP, grids=("planar",), config=MixConfig)(Mix)
    yield OP
    unregister_op(OP)


def test_a_correct_op_passes() -> None:
    assert_op_contract(OP, "planar", affine=True)
    assert_op_contract(OP, "planar", in_channels=1, out_channels=5, size=5, batch=1, affine=True)


def test_the_global_random_state_is_left_alone() -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    assert_op_contract(OP, "planar")
    torch.testing.assert_close(torch.rand(3), expected, rtol=0, atol=0)


@pytest.mark.parametrize(
    ("defect", "clause", "detail"),
    [
        ("mixes the batch", "batch independence", "must not mix the items"),
        ("wrong layout", "layout", "(B, C, H, W)"),
        ("wrong channels", "layout", "out_channels 5"),
        ("wrong dtype", "dtype", "torch.float16"),
        ("not finite", "finite", "NaN or Inf"),
        ("detached", "gradients", "cuts the graph"),
        ("unused parameter", "gradients", "'unused'"),
        ("float32 only", "float64", "got torch.float32"),
        ("unsaved state", "state_dict", "not saved"),
        ("empty batch crashes", "empty batch", "IndexError"),
        ("accepts anything", "wrong rank", "was accepted"),
        ("runtime error on bad input", "wrong channels", "must raise GeoconvError, not RuntimeError"),
        ("vague error", "wrong rank", "must name that shape"),
        ("not affine", "affine", "declared affine"),
    ],
)
def test_each_broken_clause_fails_with_its_name(defect: str, clause: str, detail: str) -> None:
    with pytest.raises(AssertionError) as info:
        assert_op_contract(OP, "planar", params={"defect": defect}, affine=True)
    message = str(info.value)
    assert message.startswith(f"op {OP!r} on grid 'planar' breaks the op contract:")
    assert f"  - {clause}: " in message
    assert detail in message


def test_every_failure_is_listed() -> None:
    with pytest.raises(AssertionError) as info:
        assert_op_contract(OP, "planar", params={"defect": "vague error"})
    lines = [line for line in str(info.value).splitlines() if line.startswith("  - ")]
    assert [line.split(":")[0] for line in lines] == ["  - wrong rank", "  - wrong channels"]


def test_affinity_is_only_checked_when_declared() -> None:
    assert_op_contract(OP, "planar", params={"defect": "not affine"})
    assert_op_contract("max_pool", "planar")
    with pytest.raises(AssertionError, match="affine"):
        assert_op_contract("max_pool", "planar", affine=True)


def test_ops_with_extra_inputs_are_driven_through_their_apply() -> None:
    assert_op_contract("max_unpool", "healpix")  # apply() builds the indices from a max_pool


def test_bad_arguments_are_geoconv_errors_not_assertions() -> None:
    with pytest.raises(UnknownNameError, match="did you mean 'conv'"):
        assert_op_contract("cnov")
    with pytest.raises(UnknownNameError, match="does not support grid 'healpix'"):
        assert_op_contract(OP, "healpix")
    with pytest.raises(UnknownNameError, match="defekt"):
        assert_op_contract(OP, params={"defekt": "none"})
    with pytest.raises(ParameterError, match="batch"):
        assert_op_contract(OP, batch=0)


# -- assert_equivariant ----------------------------------------------------------------------


def shift(x: torch.Tensor) -> torch.Tensor:
    return torch.roll(x, shifts=(2, 3), dims=(-2, -1))


def test_a_circular_conv_is_shift_equivariant_and_a_zero_padded_one_is_not() -> None:
    circular = build_op("conv", 2, 3, kernel_size=3, padding_mode="circular")
    assert assert_equivariant(circular, shift, input_shape=(2, 2, 8, 8)) < 1e-6
    zeros = build_op("conv", 2, 3, kernel_size=3, padding_mode="zeros")
    with pytest.raises(AssertionError, match=r"not equivariant: \|\|F\(T x\) - T' F\(x\)\|\| = "):
        assert_equivariant(zeros, shift, input_shape=(2, 2, 8, 8))


def test_equirect_conv_commutes_with_rotations_about_the_axis() -> None:
    # A rotation about the polar axis by 360°·3/16 is a roll of three columns on a 8 x 16 grid,
    # and the sphere padding wraps longitude exactly.
    conv = build_op("conv", 2, 3, grid="equirect").double()
    rotate = lambda x: torch.roll(x, 3, dims=-1)  # noqa: E731
    assert assert_equivariant(conv, rotate, input_shape=(1, 2, 8, 16)) < 1e-12
    zeros = build_op("conv", 2, 3, grid="equirect", padding_mode="zeros").double()
    with pytest.raises(AssertionError, match="not equivariant"):
        assert_equivariant(zeros, rotate, input_shape=(1, 2, 8, 16))


def test_the_returned_error_is_the_relative_norm_of_the_difference() -> None:
    # Closed forms: the identity against a roll of a unit impulse, ||e_1 - e_0|| / ||e_0|| = sqrt(2);
    # squaring is invariant under negation (error 0), and F(-x) = x^2 vs -F(x) = -x^2 differ by 2 x^2.
    impulse = torch.tensor([[1.0, 0.0, 0.0, 0.0]])
    error = assert_equivariant(lambda x: x, lambda x: torch.roll(x, 1, -1), lambda y: y, inputs=impulse, rtol=10)
    assert error == pytest.approx(math.sqrt(2), rel=1e-12)
    square, negate = (lambda x: x**2), (lambda x: -x)
    assert assert_equivariant(square, negate, lambda y: y, input_shape=(5, 7)) == 0.0
    assert assert_equivariant(square, negate, inputs=[torch.randn(3, 4)], rtol=3) == pytest.approx(2.0, rel=1e-12)
    with pytest.raises(AssertionError, match=r"relative error 2 "):
        assert_equivariant(square, negate, input_shape=(3, 4))


def test_tolerances_decide() -> None:
    x = torch.ones(1, 4, dtype=torch.float64)
    # A fixed offset: ||difference|| = 1e-3 * sqrt(4) = 2e-3 against ||T' F(x)|| = ||x|| = 2.
    off = lambda y: y + 1e-3  # noqa: E731
    assert assert_equivariant(lambda t: t, off, lambda y: y, inputs=x, atol=2.1e-3, rtol=0) == pytest.approx(1e-3)
    assert assert_equivariant(lambda t: t, off, lambda y: y, inputs=x, atol=0, rtol=1.1e-3) == pytest.approx(1e-3)
    with pytest.raises(AssertionError):
        assert_equivariant(lambda t: t, off, lambda y: y, inputs=x, atol=1.9e-3, rtol=0)
    with pytest.raises(AssertionError):
        assert_equivariant(lambda t: t, off, lambda y: y, inputs=x, atol=0, rtol=0.9e-3)


def test_shape_mismatch_and_non_finite_outputs_fail_clearly() -> None:
    with pytest.raises(AssertionError, match=r"F\(T x\) has shape \(1, 4\) but T' F\(x\) has shape \(4,\)"):
        assert_equivariant(lambda x: x, lambda x: x, lambda y: y[0], inputs=torch.ones(1, 4))
    with pytest.raises(AssertionError, match="NaN or Inf"):
        assert_equivariant(lambda x: x / 0, lambda x: x, inputs=torch.ones(2))


def test_random_inputs_take_the_module_dtype_and_leave_the_global_state() -> None:
    seen: list[torch.dtype] = []
    module = nn.Linear(3, 3).double()
    torch.manual_seed(5)
    expected = torch.rand(2)
    torch.manual_seed(5)
    assert_equivariant(module, lambda x: seen.append(x.dtype) or x, lambda y: y, input_shape=(2, 3), n_inputs=4)
    assert seen == [torch.float64] * 4
    torch.testing.assert_close(torch.rand(2), expected, rtol=0, atol=0)


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({}, "exactly one of inputs"),
        ({"inputs": torch.ones(2), "input_shape": (2,)}, "exactly one of inputs"),
        ({"inputs": []}, "non-empty sequence of tensors"),
        ({"input_shape": (2, 0)}, "input_shape[1]"),
        ({"input_shape": (2,), "rtol": -1}, "rtol"),
        ({"input_shape": (2,), "n_inputs": 0}, "n_inputs"),
    ],
)
def test_bad_arguments_raise_geoconv_errors(kwargs: dict, needle: str) -> None:
    with pytest.raises(GeoconvError) as info:
        assert_equivariant(lambda x: x, lambda x: x, **kwargs)
    assert needle in str(info.value)
