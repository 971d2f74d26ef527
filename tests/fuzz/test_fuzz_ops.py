"""Fuzz every registered op on every implemented grid it supports.

Random parameters (drawn from the op's config dataclass, valid and invalid), random
channel counts, input shapes and dtypes. Each case either builds and runs to an output in
the grid's layout with the documented channels and size (finite for finite input), or
raises :class:`~geoconv.errors.GeoconvError` naming the parameter or the shape.
"""

from __future__ import annotations

import dataclasses
import math
import typing

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import geoconv
from geoconv import sizes
from geoconv.grids import get_grid, list_grids
from geoconv.ops import SO3_FAMILY
from geoconv.ops.activations import ACTIVATIONS
from geoconv.ops.cheb import LAPLACIANS
from geoconv.ops.neighbour import MISSING_POLICIES
from geoconv.ops.registry import get_op
from geoconv.ops.resample import DOWNSAMPLE_MODES

OK, ERROR = "ok", "GeoconvError"

# The SO(3) family takes or gives the so3 layout, not the grid's: tests/ops/test_so3.py covers its bad input.
CASES = [
    (name, grid)
    for name in geoconv.list_ops()
    if name not in SO3_FAMILY
    for grid in get_op(name).grids
    if grid in set(list_grids())
]

# Per (op, grid) case: the profile's budget spread over the cases, at least 30 each.
EXAMPLES = max(30, settings.default.max_examples * 3 // 4)

PADDING_MODES = sorted({m for g in list_grids() for m in get_grid(g).padding_modes})
STRING_CHOICES = {
    "padding_mode": [*PADDING_MODES, "Zeros", "sphere ", "foo", ""],
    "mode": [*DOWNSAMPLE_MODES, "linear", "trilinear", "foo"],
    "activation": [*ACTIVATIONS, "Relu", "softmax"],
    "laplacian": [*LAPLACIANS, "Normalized", "random_walk"],
    "missing": [*MISSING_POLICIES, "nearest"],
    "padding": ["same", "valid", "SAME", "full", "circular"],
}
INVALID = st.sampled_from(
    [-2, -1, 0, 9, 100, "abc", "3", "", 2.5, -0.5, math.nan, math.inf, None, True, False, [], [1, 2, 3], (0, 1), {}]
)
DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int64, torch.bool, torch.complex64]


def _rarely(draw: st.DrawFn, one_in: int) -> bool:
    """True about once in ``one_in`` draws (False first, so that shrinking goes to the common case)."""
    return draw(st.sampled_from([False] * (one_in - 1) + [True]))


def _small_int(name: str) -> st.SearchStrategy[int]:
    if name in ("groups",):
        return st.sampled_from([1, 2, 3, 4])
    if name in ("K", "filter_size"):
        return st.integers(1, 5)
    if name in ("padding", "output_padding"):
        return st.sampled_from([0, 0, 1, 2, 3])
    if name == "lmax":
        return st.integers(0, 6)
    if name == "size":
        return st.integers(1, 9)
    return st.integers(1, 4)


def _valid(name: str, hint: object) -> st.SearchStrategy[object]:
    """Plausible values for a field of type ``hint`` (they may still conflict with the input)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is type(None):
        return st.none()
    if origin is typing.Literal:
        return st.sampled_from([a.upper() if isinstance(a, str) else a for a in args] + list(args))
    if origin in (typing.Union, __import__("types").UnionType):
        return st.one_of([_valid(name, a) for a in args])
    if origin in (tuple, list):
        items = [_valid(name, a) for a in args if a is not Ellipsis]
        strategy = st.tuples(*items) if Ellipsis not in args else st.lists(items[0], min_size=1, max_size=3)
        return st.one_of(strategy, strategy.map(list))
    if hint is bool:
        return st.booleans()
    if hint is int:
        return _small_int(name)
    if hint is float:
        if name == "scale_factor":
            return st.sampled_from([0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0])
        if name == "p":
            return st.sampled_from([1.0, 2.0, 3.0, math.inf])
        if name == "lambda_max":
            return st.floats(0.1, 20.0)
        return st.sampled_from([0.0, 0.0, 0.0, 1.0, -2.5, 1e-3])
    if hint is str:
        return st.sampled_from(STRING_CHOICES.get(name, ["foo"]))
    return st.just(None)


@st.composite
def _params(draw: st.DrawFn, spec: geoconv.registry.OpSpec) -> dict[str, object]:
    hints = typing.get_type_hints(spec.config)
    params: dict[str, object] = {}
    fields = [f for f in dataclasses.fields(spec.config) if f.init]
    broken = _rarely(draw, 8)  # about one case in eight has invalid values on purpose
    for field in fields:
        if not _rarely(draw, 3):
            continue  # keep the default
        if broken and _rarely(draw, 2):
            params[field.name] = draw(INVALID)
        else:
            params[field.name] = draw(_valid(field.name, hints[field.name]))
    if _rarely(draw, 25):
        name = draw(st.sampled_from([f.name for f in fields] or ["x"]))
        params[draw(st.sampled_from([name + "_", name.upper(), "kernal_size", "bogus"]))] = 1
    return params


@st.composite
def _channels(draw: st.DrawFn, spec: geoconv.registry.OpSpec) -> tuple[object, object]:
    in_channels: object = draw(st.integers(1, 4))
    if _rarely(draw, 25):
        in_channels = draw(st.sampled_from([0, -1, "2", 2.0, True, None]))
    out_channels: object
    if spec.same_channels:
        out_channels = draw(st.sampled_from([None, in_channels, in_channels]))
    else:
        out_channels = draw(st.one_of(st.none(), st.integers(1, 4)))
    if _rarely(draw, 25):
        out_channels = draw(st.sampled_from([0, -3, "4", 1.5, False, 5]))
    return in_channels, out_channels


def _spatial(draw: st.DrawFn, grid: str) -> tuple[int, ...]:
    """A valid spatial shape for ``grid``, tiny."""
    if grid == "planar":
        return (draw(st.integers(1, 8)), draw(st.integers(1, 8)))
    if grid == "equirect":
        h = draw(st.integers(1, 6))
        return (h, 2 * h) if not _rarely(draw, 4) else (h, 2 * draw(st.integers(1, 4)))
    if grid == "cubemap":
        f = draw(st.integers(1, 6))
        return (6, f, f)
    if grid == "icosahedral":
        n = draw(st.sampled_from([1, 2, 4]))
        return (5, n, 2 * n)
    n = draw(st.sampled_from([1, 2, 4, 8]))
    return (12, n, n)


_MUTATIONS = ("channels", "ndim_less", "ndim_more", "faces", "nside", "odd_width", "empty", "batch0", "non_square")


@st.composite
def _input(draw: st.DrawFn, grid: str, channels: int) -> tuple[torch.Tensor, str | None]:
    batch = draw(st.integers(1, 2))
    spatial = list(_spatial(draw, grid))
    mutation = draw(st.sampled_from(_MUTATIONS)) if _rarely(draw, 5) else None
    c = channels
    if mutation == "channels":
        c = draw(st.sampled_from([1, 2, 3, 4, 5]).filter(lambda v: v != channels))
    elif mutation == "faces" and len(spatial) == 3:
        spatial[0] = draw(st.sampled_from([1, 5, 6, 11, 12, 13]).filter(lambda v: v != spatial[0]))
    elif mutation == "nside" and grid == "healpix":
        n = draw(st.sampled_from([3, 5, 6, 7]))
        spatial[1:] = [n, n]
    elif mutation == "odd_width" and grid == "equirect":
        spatial[1] = 2 * spatial[0] + 1
    elif mutation == "non_square" and len(spatial) == 3:
        spatial[2] = spatial[1] + 1
    elif mutation == "empty":
        index = draw(st.integers(0, len(spatial)))
        if index == len(spatial):
            c = 0
        else:
            spatial[index] = 0
    elif mutation == "batch0":
        batch = 0
    shape = [batch, c, *spatial]
    if mutation == "ndim_less":
        del shape[draw(st.integers(0, len(shape) - 1))]
    elif mutation == "ndim_more":
        shape.insert(draw(st.integers(0, len(shape))), draw(st.integers(1, 2)))
    dtype = draw(st.sampled_from(DTYPES)) if _rarely(draw, 5) else torch.float32
    generator = torch.Generator().manual_seed(draw(st.integers(0, 2**16)))
    base = torch.randn(shape, generator=generator, dtype=torch.float64)
    if dtype == torch.bool:
        x = base > 0
    elif dtype == torch.int64:
        x = (3 * base).round().to(torch.int64)
    else:
        x = base.to(dtype)
    return x, mutation


def _pair(value: object) -> tuple[int, int]:
    if isinstance(value, int):
        return value, value
    return tuple(value)  # type: ignore[return-value]


def _expected_spatial(name: str, config: object, spatial: tuple[int, int]) -> tuple[int, int] | None:
    """The output face size the docs promise, where they give a formula."""
    c = config
    if name in ("conv", "gated_conv"):
        if c.padding == "same":
            return tuple(-(-n // s) for n, s in zip(spatial, c.stride, strict=True))
        if c.padding == "valid":
            pads = ((0, 0), (0, 0))
        elif len(c.padding) == 4:
            pads = ((c.padding[0], c.padding[1]), (c.padding[2], c.padding[3]))
        else:
            pads = ((c.padding[0],) * 2, (c.padding[1],) * 2)
        return tuple(
            sizes.conv_output_size(n, k, s, p, d)
            for n, k, s, p, d in zip(spatial, c.kernel_size, c.stride, pads, c.dilation, strict=True)
        )
    if name == "conv_transpose":
        if c.padding == "same":
            return tuple(n * s for n, s in zip(spatial, c.stride, strict=True))
        return tuple(
            sizes.conv_transpose_output_size(n, k, s, p, d, o)
            for n, k, s, p, d, o in zip(
                spatial, c.kernel_size, c.stride, c.padding, c.dilation, c.output_padding, strict=True
            )
        )
    if name in ("max_pool", "avg_pool"):
        dilation = getattr(c, "dilation", (1, 1))
        stride = c.stride or c.kernel_size
        return tuple(
            sizes.pool_output_size(n, k, s, p, d, c.ceil_mode)
            for n, k, s, p, d in zip(spatial, c.kernel_size, stride, c.padding, dilation, strict=True)
        )
    if name == "blur_pool":
        return tuple(-(-n // s) for n, s in zip(spatial, c.stride, strict=True))
    if name == "aps_pool":
        return tuple(n // s for n, s in zip(spatial, c.stride, strict=True))
    if name in ("max_unpool", "cheb_conv", "neighbour_conv", "spectral_conv"):
        return spatial
    if name in ("upsample", "downsample"):
        if c.size is not None:
            return _pair(c.size)
        return tuple(math.floor(n * f) for n, f in zip(spatial, _pair_float(c.scale_factor), strict=True))
    return None


def _pair_float(value: object) -> tuple[float, float]:
    if isinstance(value, tuple | list):
        return float(value[0]), float(value[1])
    return float(value), float(value)


@pytest.mark.parametrize(("name", "grid"), CASES)
@settings(max_examples=EXAMPLES, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_fuzz_op(fuzz, name: str, grid: str, data: st.DataObject) -> None:
    spec = get_op(name)
    label = f"op {name}@{grid}"
    params = data.draw(_params(spec), label="params")
    in_channels, out_channels = data.draw(_channels(spec), label="channels")
    build_grid = grid if not _rarely(data.draw, 30) else data.draw(st.sampled_from(["sphere", "Planar", *GRIDS]))
    words = [*params, "channels", "grid", name]
    torch.manual_seed(0)
    module = fuzz.attempt(label, words, spec.build, in_channels, out_channels, build_grid, **params)
    if module is ERROR:
        return
    assert isinstance(module, torch.nn.Module)
    assert build_grid == grid or build_grid in spec.grids
    x, mutation = data.draw(
        _input(build_grid, in_channels if isinstance(in_channels, int) else 1), label="input (x, mutation)"
    )
    words = [*params, "shape", "dtype", "channels", "size", "nside", "face", "grid", "x"]
    with torch.no_grad():
        out = fuzz.attempt(label, words, spec.apply, module, x)
    if out is ERROR:
        return
    values = out
    if isinstance(out, tuple):
        assert name == "max_pool" and len(out) == 2, f"{name} returned a tuple of {len(out)}"
        values, indices = out
        assert indices.shape == values.shape and indices.dtype == torch.int64
    assert isinstance(values, torch.Tensor)
    layout = get_grid(build_grid)
    layout.check(values, "output")
    channels = in_channels if spec.same_channels or out_channels is None else out_channels
    assert values.shape[:2] == (x.shape[0], channels), f"output {tuple(values.shape)} for input {tuple(x.shape)}"
    assert values.shape[2:-2] == x.shape[2:-2], "faces must be kept"
    config = spec.make_config(**params)
    expected = _expected_spatial(name, config, tuple(x.shape[-2:]))
    if expected is not None:
        assert tuple(values.shape[-2:]) == expected, (
            f"{name}: face size {tuple(values.shape[-2:])}, documented {expected} for input {tuple(x.shape)}"
        )
    if x.is_floating_point() and values.is_floating_point():
        assert values.dtype == x.dtype, f"dtype {values.dtype} for a {x.dtype} input"
    if (x.is_floating_point() or x.is_complex()) and torch.isfinite(x).all():
        assert torch.isfinite(values).all(), f"non-finite output for finite input (mutation {mutation})"
    fuzz.record(label, OK)


GRIDS = ("planar", "equirect", "cubemap", "healpix")
