"""blur_pool and aps_pool: binomial taps from the closed formula, float64 loops, shift invariance."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import geoconv
from geoconv.errors import GeoconvError, ParameterError, ShapeError, UnknownNameError
from geoconv.ops.antialias import binomial_filter

PLANAR_MODES = ("reflect", "replicate", "circular", "zeros", "constant")
FILL = 0.3


def _source(r: int, n: int, mode: str) -> int | None:
    """The input index padded coordinate ``r`` copies (None for zeros/constant)."""
    if 0 <= r < n:
        return r
    if mode == "circular":
        return r % n
    if mode == "replicate":
        return min(max(r, 0), n - 1)
    if mode == "reflect":
        return -r if r < 0 else 2 * (n - 1) - r
    return None


def _taps(n: int) -> list[float]:
    return [math.comb(n - 1, k) / 2 ** (n - 1) for k in range(n)]


def loop_blur_pool(x: torch.Tensor, n: int, stride: tuple[int, int], mode: str) -> torch.Tensor:
    """float64 blur + subsample by hand, with TensorFlow's "same" split of the padding."""
    b_, c_, h, w = x.shape
    taps = _taps(n)
    out = (-(-h // stride[0]), -(-w // stride[1]))
    # total padding so that the last window ends on the last padded pixel; the odd pixel goes after
    before = [max((out[a] - 1) * stride[a] + n - (h, w)[a], 0) // 2 for a in range(2)]
    xs = x.tolist()
    y = torch.zeros(b_, c_, *out, dtype=torch.float64)
    for b in range(b_):
        for c in range(c_):
            for i in range(out[0]):
                for j in range(out[1]):
                    total = 0.0
                    for u in range(n):
                        for v in range(n):
                            si = _source(i * stride[0] - before[0] + u, h, mode)
                            sj = _source(j * stride[1] - before[1] + v, w, mode)
                            value = xs[b][c][si][sj] if si is not None and sj is not None else 0.0
                            if (si is None or sj is None) and mode == "constant":
                                value = FILL
                            total += taps[u] * taps[v] * value
                    y[b, c, i, j] = total
    return y


# --- blur_pool --------------------------------------------------------------------------------


@pytest.mark.parametrize("n", range(1, 8))
def test_filter_taps_are_binomial_coefficients(n) -> None:
    op = geoconv.build_op("blur_pool", 3, grid="planar", filter_size=n)
    expected = torch.tensor(_taps(n), dtype=torch.float64)
    assert op.filter.shape == (3, 1, n, n)
    for c in range(3):
        torch.testing.assert_close(op.filter[c, 0].double(), torch.outer(expected, expected), rtol=0, atol=1e-7)
    torch.testing.assert_close(binomial_filter(n), torch.outer(expected, expected), rtol=0, atol=1e-15)
    assert math.isclose(float(binomial_filter(n).sum()), 1.0, abs_tol=1e-15)


def test_filter_is_a_non_persistent_buffer() -> None:
    op = geoconv.build_op("blur_pool", 2, filter_size=5)
    assert "filter" in dict(op.named_buffers())
    assert op.state_dict() == {}
    assert list(op.parameters()) == []
    assert op.to(torch.float64).filter.dtype == torch.float64


@pytest.mark.parametrize("n", range(1, 8))
@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_constant_image_stays_constant(n, mode) -> None:
    x = torch.full((1, 2, 9, 10), 2.5, dtype=torch.float64)
    y = geoconv.build_op("blur_pool", 2, filter_size=n, padding_mode=mode)(x)
    assert y.shape == (1, 2, 5, 5)
    torch.testing.assert_close(y, torch.full_like(y, 2.5), rtol=0, atol=1e-14)


def test_default_padding_is_reflect_on_the_plane() -> None:
    op = geoconv.build_op("blur_pool", 1)
    assert op.padding_mode == "reflect"
    x = torch.randn(1, 1, 8, 7, dtype=torch.float64)
    torch.testing.assert_close(op(x), loop_blur_pool(x, 3, (2, 2), "reflect"), rtol=0, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(
    st.integers(1, 7),
    st.tuples(st.integers(1, 3), st.integers(1, 3)),
    st.sampled_from(PLANAR_MODES),
    st.tuples(st.integers(4, 9), st.integers(4, 9)),
)
def test_blur_pool_matches_float64_loop(n, stride, mode, size) -> None:
    x = torch.randn(1, 2, *size, dtype=torch.float64, generator=torch.Generator().manual_seed(sum(size) + n))
    fill = FILL if mode == "constant" else 0.0
    op = geoconv.build_op("blur_pool", 2, filter_size=n, stride=stride, padding_mode=mode, value=fill)
    y = op(x)
    assert y.shape[-2:] == (-(-size[0] // stride[0]), -(-size[1] // stride[1]))
    torch.testing.assert_close(y, loop_blur_pool(x, n, stride, mode), rtol=0, atol=1e-12)


def test_blur_pool_follows_the_input_dtype_and_passes_gradients() -> None:
    op = geoconv.build_op("blur_pool", 2)
    x = torch.randn(1, 2, 6, 6, dtype=torch.float64, requires_grad=True)
    y = op(x)
    assert y.dtype == torch.float64
    y.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


# --- aps_pool ---------------------------------------------------------------------------------


def _components(x: torch.Tensor, s: tuple[int, int]) -> list[torch.Tensor]:
    return [x[..., a :: s[0], b :: s[1]] for a in range(s[0]) for b in range(s[1])]


def _matches_up_to_circular_shift(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether ``b`` is ``a`` circularly shifted by some (di, dj)."""
    h, w = a.shape[-2:]
    return any(
        torch.allclose(torch.roll(a, (di, dj), (-2, -1)), b, rtol=0, atol=1e-6) for di in range(h) for dj in range(w)
    )


@pytest.mark.parametrize("p", [2.0, 1.0, math.inf, 0.5])
@pytest.mark.parametrize("stride", [(2, 2), (3, 2), (1, 3)])
def test_aps_keeps_the_component_with_the_largest_norm(p, stride) -> None:
    x = torch.randn(6, 3, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(11))
    op = geoconv.build_op("aps_pool", 3, grid="planar", stride=stride, p=p)
    y, phase = op.polyphase(x)
    assert torch.equal(op(x), y)
    assert y.shape == (6, 3, 6 // stride[0], 6 // stride[1])
    for b in range(6):
        comps = _components(x[b], stride)
        norms = [float(c.abs().max() if math.isinf(p) else (c.abs() ** p).sum() ** (1 / p)) for c in comps]
        best = max(range(len(comps)), key=norms.__getitem__)
        assert int(phase[b]) == best
        assert torch.equal(y[b], comps[best])
        assert all(norms[best] >= other for other in norms)


@pytest.mark.parametrize("filter_size", [1, 3, 4])
@pytest.mark.parametrize("shift", [(1, 1), (1, 0), (3, 5)])
def test_aps_is_consistent_under_circular_shifts(filter_size, shift) -> None:
    x = torch.randn(16, 2, 8, 10, generator=torch.Generator().manual_seed(5))
    aps = geoconv.build_op("aps_pool", 2, filter_size=filter_size)
    y, y_shifted = aps(x), aps(torch.roll(x, shift, (-2, -1)))
    consistency = sum(_matches_up_to_circular_shift(y[b], y_shifted[b]) for b in range(16)) / 16
    assert consistency == 1.0
    # Plain strided sampling aliases: the same probe tells it apart.
    strided = x[..., ::2, ::2]
    strided_shifted = torch.roll(x, (1, 1), (-2, -1))[..., ::2, ::2]
    plain = sum(_matches_up_to_circular_shift(strided[b], strided_shifted[b]) for b in range(16)) / 16
    assert plain < 0.5


def test_aps_blur_is_a_circular_binomial_filter_first() -> None:
    x = torch.randn(4, 2, 6, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(9))
    op = geoconv.build_op("aps_pool", 2, filter_size=3)
    assert op.padding_mode == "circular"
    taps = torch.tensor(_taps(3), dtype=torch.float64)
    weight = torch.outer(taps, taps).expand(2, 1, 3, 3)
    blurred = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="circular"), weight, groups=2)
    y = op(x)
    for b in range(4):
        comps = _components(blurred[b], (2, 2))
        best = max(comps, key=lambda c: float(c.norm()))
        torch.testing.assert_close(y[b], best, rtol=0, atol=1e-12)


def test_aps_gradient_reaches_the_kept_component_only() -> None:
    x = torch.randn(1, 1, 4, 4, dtype=torch.float64, requires_grad=True)
    op = geoconv.build_op("aps_pool", 1)
    _, phase = op.polyphase(x)
    op(x).sum().backward()
    a, b = divmod(int(phase[0]), 2)
    expected = torch.zeros(4, 4, dtype=torch.float64)
    expected[a::2, b::2] = 1
    assert torch.equal(x.grad[0, 0], expected)


# --- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "params", "error", "match"),
    [
        ("blur_pool", {"filter_size": 0}, ParameterError, r"filter_size must be an integer >= 1 and <= 7, got 0"),
        ("blur_pool", {"filter_size": 8}, ParameterError, r"filter_size must be an integer >= 1 and <= 7, got 8"),
        ("blur_pool", {"stride": 0}, ParameterError, r"stride must be an integer >= 1, got 0"),
        ("blur_pool", {"padding_mode": "reflection"}, UnknownNameError, r"padding_mode.*did you mean 'reflect'"),
        ("blur_pool", {"filter_size": 2.5}, ParameterError, r"blur_pool.filter_size must be of type int"),
        ("aps_pool", {"stride": (2, 0)}, ParameterError, r"stride\[1\] must be an integer >= 1, got 0"),
        ("aps_pool", {"filter_size": 9}, ParameterError, r"filter_size must be an integer >= 1 and <= 7, got 9"),
        ("aps_pool", {"p": 0}, ParameterError, r"p must be > 0, got 0.0"),
        ("aps_pool", {"padding_mode": "circ"}, UnknownNameError, r"padding_mode.*did you mean 'circular'"),
        ("aps_pool", {"filtersize": 3}, UnknownNameError, r"did you mean 'filter_size'"),
    ],
)
def test_bad_parameters_name_the_culprit(name, params, error, match) -> None:
    with pytest.raises(error, match=match):
        geoconv.build_op(name, 2, **params)


@pytest.mark.parametrize("name", ["blur_pool", "aps_pool"])
def test_bad_inputs(name) -> None:
    op = geoconv.build_op(name, 3)
    with pytest.raises(ShapeError, match=r"x must have shape \(B, C, H, W\).*got a 3-D tensor"):
        op(torch.randn(3, 4, 4))
    with pytest.raises(ShapeError, match=rf"{name}: x must have in_channels=3 channels.*got shape \(1, 2, 4, 4\)"):
        op(torch.randn(1, 2, 4, 4))
    with pytest.raises(ShapeError, match=rf"{name}: x must have a floating-point dtype, got torch.int64"):
        op(torch.ones(1, 3, 4, 4, dtype=torch.long))
    with pytest.raises(ParameterError, match=r"out_channels must equal in_channels \(3\).*got out_channels=5"):
        geoconv.build_op(name, 3, 5)


def test_aps_needs_sizes_divisible_by_the_stride() -> None:
    op = geoconv.build_op("aps_pool", 2, stride=(2, 3))
    with pytest.raises(ShapeError, match=r"divisible by stride=\(2, 3\), got x of shape \(1, 2, 6, 8\)"):
        op(torch.randn(1, 2, 6, 8))
    assert op(torch.randn(1, 2, 6, 9)).shape == (1, 2, 3, 3)


def test_blur_pool_reflect_on_a_tiny_input_is_a_geoconv_error() -> None:
    with pytest.raises(GeoconvError, match=r"reflect padding needs each width smaller than its dimension"):
        geoconv.build_op("blur_pool", 1)(torch.randn(1, 1, 1, 5))
    # circular or replicate padding handle it
    y = geoconv.build_op("blur_pool", 1, padding_mode="replicate")(torch.full((1, 1, 1, 5), 4.0))
    assert torch.equal(y, torch.full((1, 1, 1, 3), 4.0))
