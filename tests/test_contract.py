"""The contract every registered op keeps, on every implemented grid it supports.

Each op is built from its config defaults and driven through ``OpSpec.apply`` with one
tensor in the grid's layout, so an op added later (plugins included) is held to the same
contract without a line of test code: a finite forward, gradients for the input and every
parameter, float64, a state_dict round trip, ``.to(dtype)``, determinism under a seed,
and defaults for every config field.
"""

from __future__ import annotations

import copy

import pytest
import torch

import geoconv
from geoconv.grids import get_grid, list_grids
from geoconv.ops.registry import get_op

BATCH, CHANNELS, SIZE = 2, 4, 8  # SIZE: a power of two, as HEALPix nside must be


def _cases() -> list[tuple[str, str]]:
    implemented = set(list_grids())
    return [(name, grid) for name in geoconv.list_ops() for grid in get_op(name).grids if grid in implemented]


CASES = _cases()


def _build(name: str, grid: str, seed: int = 0) -> torch.nn.Module:
    spec = get_op(name)
    torch.manual_seed(seed)
    out_channels = CHANNELS if spec.same_channels else CHANNELS + 2
    return spec.build(CHANNELS, out_channels, grid=grid)


def _input(grid: str, dtype: torch.dtype = torch.float32, seed: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(get_grid(grid).shape(BATCH, CHANNELS, SIZE), generator=generator, dtype=dtype)


def _run(name: str, module: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    out = get_op(name).apply(module, x)
    return out[0] if isinstance(out, tuple) else out


def test_every_builtin_op_is_registered() -> None:
    expected = {
        "conv",
        "conv_transpose",
        "gated_conv",
        "max_pool",
        "avg_pool",
        "max_unpool",
        "upsample",
        "downsample",
        "blur_pool",
        "aps_pool",
    }
    assert expected <= set(geoconv.list_ops())


@pytest.mark.parametrize(("name", "grid"), CASES)
def test_config_defaults_and_docs(name: str, grid: str) -> None:
    spec = get_op(name)
    assert all(not p.required for p in spec.parameters()), "every field needs a default"
    assert spec.summary, f"{name} needs a docstring"
    assert spec.make_config() == spec.config()


@pytest.mark.parametrize(("name", "grid"), CASES)
def test_forward_backward_finite(name: str, grid: str) -> None:
    module = _build(name, grid)
    x = _input(grid).requires_grad_(True)
    y = _run(name, module, x)
    assert y.dtype == x.dtype
    assert y.shape[0] == BATCH
    assert torch.isfinite(y).all()
    # A random projection, so that no op can pass by returning a constant.
    weights = torch.randn(y.shape, generator=torch.Generator().manual_seed(2))
    (y * weights).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert x.grad.abs().sum() > 0, "the output must depend on the input"
    for pname, param in module.named_parameters():
        assert param.grad is not None, f"no gradient for {pname}"
        assert torch.isfinite(param.grad).all()


@pytest.mark.parametrize(("name", "grid"), CASES)
def test_float64_matches_float32(name: str, grid: str) -> None:
    module = _build(name, grid)
    x = _input(grid, torch.float64)
    y64 = _run(name, copy.deepcopy(module).to(torch.float64), x)
    y32 = _run(name, module, x.float())
    assert y64.dtype == torch.float64
    assert torch.allclose(y64.float(), y32, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(("name", "grid"), CASES)
def test_state_dict_round_trip(name: str, grid: str) -> None:
    source = _build(name, grid, seed=0)
    target = _build(name, grid, seed=123)
    target.load_state_dict(source.state_dict())
    x = _input(grid)
    assert torch.equal(_run(name, source.eval(), x), _run(name, target.eval(), x))


@pytest.mark.parametrize(("name", "grid"), CASES)
def test_deterministic_under_seed(name: str, grid: str) -> None:
    x = _input(grid)
    first = _run(name, _build(name, grid, seed=7), x)
    second = _run(name, _build(name, grid, seed=7), x)
    assert torch.equal(first, second)


@pytest.mark.parametrize(("name", "grid"), CASES)
def test_rejects_wrong_layout(name: str, grid: str) -> None:
    module = _build(name, grid)
    with pytest.raises(geoconv.GeoconvError):
        _run(name, module, torch.randn(CHANNELS, SIZE, SIZE))


@pytest.mark.parametrize(("name", "grid"), CASES)
def test_unknown_parameter_suggests(name: str, grid: str) -> None:
    spec = get_op(name)
    first = spec.parameters()[0].name if spec.parameters() else "x"
    with pytest.raises(geoconv.errors.UnknownNameError) as info:
        spec.build(CHANNELS, grid=grid, **{first + "_typo": 1})
    assert first in info.value.suggestions
    assert first in str(info.value)
