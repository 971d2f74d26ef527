"""Every op through the fast paths: compiled padding plans, torch.compile, autocast, channels-last.

The spherical grids pad with a padding table compiled into strided block copies
(:mod:`geoconv.grids._blocks`); the literal table gather stays as the reference
(:func:`geoconv.grids.sphere.reference_padding`). Here every registered op is held to it,
then compiled with ``fullgraph=True``, run under bfloat16 autocast and fed channels-last
tensors, and the padding's custom autograd pair is checked to second order.

Sizes are tiny (nside 4, batch 2): the whole module runs in well under a minute and a half
on two CPU cores, except the one inductor test (``slow``).
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytest
import torch

import geoconv
from geoconv.grids import equirect, get_grid, list_grids
from geoconv.grids._gather import TABLES
from geoconv.grids.sphere import reference_padding
from geoconv.ops import SO3_FAMILY
from geoconv.ops.registry import get_op

BATCH, CHANNELS, SIZE = 2, 3, 4  # SIZE: a power of two, as HEALPix nside must be
SPHERES = ("equirect", "cubemap", "healpix")

# The pooling ops pad nothing by default (padding=0): these variants make them pad.
VARIANTS: dict[str, dict[str, dict[str, object]]] = {
    "avg_pool": {"k3p1": {"kernel_size": 3, "stride": 1, "padding": 1}},
    "max_pool": {
        "k3p1": {"kernel_size": 3, "stride": 1, "padding": 1},
        "indices": {"kernel_size": 3, "stride": 2, "padding": 1, "return_indices": True},
    },
    "max_unpool": {"k3s2p1": {"kernel_size": 3, "stride": 2, "padding": 1}},
}

Case = tuple[str, str, dict[str, object]]


def _spherical(name: str) -> list[str]:
    implemented = set(list_grids())
    return [g for g in get_op(name).grids if g in SPHERES and g in implemented]


def _param(name: str, grid: str, tag: str, params: dict[str, object], marks: tuple = ()) -> object:
    return pytest.param(name, grid, params, id="-".join(filter(None, (name, grid, tag))), marks=marks)


def _build(name: str, grid: str, params: dict[str, object], dtype: torch.dtype = torch.float32) -> torch.nn.Module:
    spec = get_op(name)
    torch.manual_seed(0)
    out_channels = CHANNELS if spec.same_channels else CHANNELS + 1
    return spec.build(CHANNELS, out_channels, grid=grid, **params).to(dtype)


def _input(grid: str, dtype: torch.dtype = torch.float32, size: int = SIZE, seed: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(get_grid(grid).shape(BATCH, CHANNELS, size), generator=generator, dtype=dtype)


def _outputs(out: torch.Tensor | tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    return out if isinstance(out, tuple) else (out,)


def _forward_backward(
    call: Callable[[torch.Tensor], object], module: torch.nn.Module, x: torch.Tensor
) -> tuple[tuple[torch.Tensor, ...], dict[str, torch.Tensor]]:
    """Outputs, and the gradients of x and every parameter for a fixed random cotangent."""
    x = x.detach().clone().requires_grad_(True)
    outs = _outputs(call(x))
    cotangent = torch.randn(outs[0].shape, generator=torch.Generator().manual_seed(2), dtype=outs[0].dtype)
    (outs[0] * cotangent).sum().backward()
    grads = {"x": x.grad}
    grads.update({name: p.grad for name, p in module.named_parameters()})
    return tuple(o.detach() for o in outs), grads


def _applier(name: str, module: torch.nn.Module) -> Callable[[torch.Tensor], object]:
    spec = get_op(name)
    return lambda t: spec.apply(module, t)


# -- 1. the fast padding path gives the reference's values and gradients, op by op --------------------


def _reference_cases() -> list[object]:
    cases = []
    for name in geoconv.list_ops():
        if name in SO3_FAMILY:  # no padding: nothing fast to compare; tests/ops/test_so3.py has them
            continue
        for grid in _spherical(name):
            cases.append(_param(name, grid, "", {}))
            cases.extend(_param(name, grid, tag, params) for tag, params in VARIANTS.get(name, {}).items())
    return cases


@pytest.mark.parametrize(("name", "grid", "params"), _reference_cases())
def test_fast_padding_matches_reference(name: str, grid: str, params: dict[str, object]) -> None:
    module = _build(name, grid, params, torch.float64)
    x = _input(grid, torch.float64)
    if name == "spectral_conv":
        module(x)  # materialise the lazy weight before copying
    reference_module = copy.deepcopy(module)
    outs, grads = _forward_backward(_applier(name, module), module, x)
    with reference_padding():
        ref_outs, ref_grads = _forward_backward(_applier(name, reference_module), reference_module, x)
    assert len(outs) == len(ref_outs)
    for out, ref in zip(outs, ref_outs, strict=True):
        if out.is_floating_point():
            torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)
        else:
            assert torch.equal(out, ref)  # max_pool's indices
    assert grads.keys() == ref_grads.keys()
    for key, grad in grads.items():
        assert grad is not None and ref_grads[key] is not None, key
        # The adjoint sums a pixel's border contributions in another order than index_add.
        torch.testing.assert_close(grad, ref_grads[key], rtol=0, atol=1e-12, msg=lambda m, k=key: f"{k}: {m}")


# -- 2. torch.compile(fullgraph=True) -----------------------------------------------------------------

DATA_DEPENDENT = pytest.mark.xfail(
    strict=True,
    raises=(torch._dynamo.exc.Unsupported, torch._dynamo.exc.UserError),
    reason="data-dependent: the indices are checked with bool(tensor.any()) / int(indices.min()), a Tensor.item() "
    "graph break (torch._dynamo.config.capture_scalar_outputs=False)",
)
COMPILE_XFAIL = {
    ("max_pool", "indices"): DATA_DEPENDENT,
    ("max_unpool", "k3s2p1"): DATA_DEPENDENT,
    # Not a padded op: its Laplacian is a sparse CSR matrix, which dynamo does not trace.
    ("cheb_conv", ""): pytest.mark.xfail(
        strict=True,
        raises=torch._dynamo.exc.Unsupported,
        reason="torch.compile(fullgraph=True) does not support sparse tensors (cheb_conv's sparse Laplacian)",
    ),
}


def _compile_cases() -> list[object]:
    cases = []
    for name in geoconv.list_ops():
        if name in SO3_FAMILY:  # their input is the so3 layout, not an equirect map
            continue
        # The pools' defaults pad nothing: compile the variants that do.
        variants = VARIANTS.get(name, {"": {}})
        for grid in _spherical(name):
            for tag, params in variants.items():
                marks = (COMPILE_XFAIL[(name, tag)],) if (name, tag) in COMPILE_XFAIL else ()
                cases.append(_param(name, grid, tag, params, marks))
    return cases


@pytest.fixture
def fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def _compiled_call(name: str, module: torch.nn.Module, **options: object) -> Callable[[torch.Tensor], object]:
    spec = get_op(name)
    # Compile the module itself where it takes one tensor; max_unpool needs its pool's indices.
    target = module if spec.apply is get_op("conv").apply else _applier(name, module)
    return torch.compile(target, fullgraph=True, **options)


def _assert_same(got: tuple, expected: tuple) -> None:
    (outs, grads), (ref_outs, ref_grads) = got, expected
    for out, ref in zip(outs, ref_outs, strict=True):
        torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)
    for key, grad in grads.items():
        torch.testing.assert_close(grad, ref_grads[key], rtol=1e-4, atol=1e-5, msg=lambda m, k=key: f"{k}: {m}")


@pytest.mark.usefixtures("fresh_dynamo")
@pytest.mark.parametrize(("name", "grid", "params"), _compile_cases())
def test_compiles_fullgraph_and_matches_eager(name: str, grid: str, params: dict[str, object]) -> None:
    module = _build(name, grid, params)
    x = _input(grid)
    expected = _forward_backward(_applier(name, module), module, x)
    compiled_module = copy.deepcopy(module)
    got = _forward_backward(_compiled_call(name, compiled_module, backend="aot_eager"), compiled_module, x)
    _assert_same(got, expected)


@pytest.mark.usefixtures("fresh_dynamo")
@pytest.mark.parametrize("name", ["conv", "conv_transpose"])
def test_compile_builds_the_padding_plan_while_tracing(name: str) -> None:
    module = _build(name, "healpix", {})
    x = _input("healpix")
    TABLES.clear()
    compiled_module = copy.deepcopy(module)
    got = _forward_backward(_compiled_call(name, compiled_module, backend="aot_eager"), compiled_module, x)
    assert len(TABLES) > 0, "tracing should have built the padding plan into the cache"
    _assert_same(got, _forward_backward(_applier(name, module), module, x))


@pytest.mark.usefixtures("fresh_dynamo")
def test_compile_dynamic_specialises_the_padding_to_the_size() -> None:
    # A padding plan differs per spatial size, so dynamic=True guards on that size (guard_scalar)
    # instead of breaking the graph; the batch stays symbolic. Batches 5 and 7 collide with no
    # other size, so duck sizing does not tie the batch to a constant. (equirect: the quickest trace)
    module = _build("conv", "equirect", {})
    compiled_module = copy.deepcopy(module)
    compiled = torch.compile(compiled_module, fullgraph=True, dynamic=True, backend="aot_eager")
    generator = torch.Generator().manual_seed(3)
    with torch._dynamo.config.patch(error_on_recompile=True):
        for batch in (5, 7):  # the second batch reuses the first graph
            x = torch.randn(get_grid("equirect").shape(batch, CHANNELS, SIZE), generator=generator)
            got = _forward_backward(compiled, compiled_module, x)
            compiled_module.zero_grad()
            expected = _forward_backward(module, module, x)
            module.zero_grad()
            _assert_same(got, expected)
        # Another spatial size fails the size guard: a new graph, specialised to it.
        with pytest.raises(torch._dynamo.exc.RecompileError, match="size mismatch at index 2"):
            compiled(torch.randn(get_grid("equirect").shape(5, CHANNELS, 2 * SIZE), requires_grad=True))


@pytest.mark.slow
@pytest.mark.usefixtures("fresh_dynamo")
def test_compiles_with_inductor() -> None:
    module = _build("conv", "healpix", {})
    x = _input("healpix")
    expected = _forward_backward(module, module, x)
    compiled_module = copy.deepcopy(module)
    got = _forward_backward(_compiled_call("conv", compiled_module, backend="inductor"), compiled_module, x)
    _assert_same(got, expected)


# -- 3. autocast -------------------------------------------------------------------------------------

AUTOCAST_OPS = ("conv", "gated_conv", "conv_transpose", "blur_pool")
AUTOCAST_CASES = [_param(name, grid, "", {}) for name in AUTOCAST_OPS for grid in SPHERES]

# bfloat16 keeps 8 significant bits: each rounding (input, weight, output) is off by at most
# 2**-8 relative; a few of them in a row stay below 5 * 2**-8 ~ 2e-2 (the norm's error is far
# smaller in practice, ~3e-3, since the roundings do not all align).
BF16_RTOL = 5 * 2**-8


@pytest.mark.parametrize(("name", "grid", "params"), AUTOCAST_CASES)
def test_autocast_bfloat16_is_close_and_differentiable(name: str, grid: str, params: dict[str, object]) -> None:
    module = _build(name, grid, params)
    x = _input(grid)
    expected = module(x)
    x = x.clone().requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = module(x)
    assert torch.isfinite(y).all()
    error = (y.float() - expected).norm() / expected.norm()
    assert error < BF16_RTOL, f"relative error {error:.2e}"
    y.float().square().sum().backward()
    assert x.grad is not None and x.grad.dtype == torch.float32 and torch.isfinite(x.grad).all()
    for pname, param in module.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), pname


@pytest.mark.parametrize(
    ("name", "grid", "params"),
    [_param(name, grid, "", {}, ()) for name in AUTOCAST_OPS for grid in SPHERES],
)
def test_autocast_bfloat16_output_dtype(name: str, grid: str, params: dict[str, object]) -> None:
    module = _build(name, grid, params)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = module(_input(grid))
    assert y.dtype == torch.bfloat16


# -- 4. channels-last ------------------------------------------------------------------------------------


@pytest.mark.parametrize("grid", ["planar", "equirect"])
@pytest.mark.parametrize(("name", "params"), [("conv", {}), ("avg_pool", VARIANTS["avg_pool"]["k3p1"])])
def test_channels_last_input_gives_the_same_values(name: str, params: dict[str, object], grid: str) -> None:
    module = _build(name, grid, params, torch.float64)
    x = _input(grid, torch.float64, size=8)
    x_last = x.to(memory_format=torch.channels_last)
    assert not x_last.is_contiguous() and x_last.is_contiguous(memory_format=torch.channels_last)
    outs, grads = _forward_backward(module, module, x)
    module.zero_grad()
    outs_last, grads_last = _forward_backward(module, module, x_last)
    # The padding is a copy, exact in any layout; torch's own float64 conv kernel sums in another
    # order for channels-last (F.conv2d alone differs by ~1e-15 there), so allow rounding.
    tolerance = {"rtol": 0, "atol": 1e-12} if name == "conv" else {"rtol": 0, "atol": 0}
    torch.testing.assert_close(outs_last[0], outs[0], **tolerance)
    for key, grad in grads.items():
        torch.testing.assert_close(grads_last[key], grad, **tolerance, msg=lambda m, k=key: f"{k}: {m}")


@pytest.mark.parametrize("widths", [(1, 1, 1, 1), (2, 1, 0, 3)], ids=["w1", "w2103"])
def test_equirect_pad_keeps_channels_last(widths: tuple[int, int, int, int]) -> None:
    x = _input("equirect", torch.float64, size=8)
    x_last = x.to(memory_format=torch.channels_last)
    padded = equirect.pad(x_last, widths)
    assert padded.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(padded, equirect.pad(x, widths))
    with reference_padding():
        assert torch.equal(padded, equirect.pad(x, widths))


# -- 5. gradcheck -----------------------------------------------------------------------------------------

GRADCHECK_CASES = [
    pytest.param(grid, mode, widths, id=f"{grid}-{mode}-{''.join(map(str, widths))}")
    for grid in SPHERES
    for mode in get_grid(grid).own_modes
    for widths in ((1, 1, 1, 1), (2, 1, 0, 1))
]


@pytest.mark.parametrize(("grid", "mode", "widths"), GRADCHECK_CASES)
def test_pad_and_its_adjoint_gradcheck(grid: str, mode: str, widths: tuple[int, int, int, int]) -> None:
    owner = get_grid(grid)
    x = torch.randn(owner.shape(1, 1, 2), dtype=torch.float64, requires_grad=True)  # equirect: 2x4
    source = x.detach()
    y = torch.randn(owner.pad(source, widths, mode).shape, dtype=torch.float64, requires_grad=True)

    def pad(t: torch.Tensor) -> torch.Tensor:
        return owner.pad(t, widths, mode)

    def adjoint(t: torch.Tensor) -> torch.Tensor:
        return owner.pad_adjoint(t, widths, mode, source)

    assert torch.autograd.gradcheck(pad, (x,))
    assert torch.autograd.gradgradcheck(pad, (x,))
    assert torch.autograd.gradcheck(adjoint, (y,))
    assert torch.autograd.gradgradcheck(adjoint, (y,))


@pytest.mark.parametrize("grid", SPHERES)
def test_conv_with_the_grid_padding_gradcheck(grid: str) -> None:
    module = get_op("conv").build(2, 2, grid=grid, padding_mode=get_grid(grid).default_padding_mode).double()
    x = torch.randn(get_grid(grid).shape(1, 2, 2), dtype=torch.float64, requires_grad=True)
    weight = module.weight.detach().clone().requires_grad_(True)
    bias = module.bias.detach().clone().requires_grad_(True)

    def conv(t: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.func.functional_call(module, {"weight": w, "bias": b}, (t,))

    assert torch.autograd.gradcheck(conv, (x, weight, bias))
    assert torch.autograd.gradgradcheck(conv, (x, weight, bias))
