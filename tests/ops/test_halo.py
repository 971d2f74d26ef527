"""The halo correction (:mod:`geoconv.ops._halo`) against the padded path and independent references.

The references are written here: for ``conv``, the grid's padding made explicit
(``grid.pad(x, widths, mode)``) then ``F.conv2d`` with no padding, in float64; for
``conv_transpose``, the vector-Jacobian product of that reference conv (which *is* its adjoint
applied to the input), plus the bias. Every case also runs the padded path, and gradients of the
input and the weight are compared between the paths. Face sizes are chosen so that the halo path
applies (``select(..., rule=False)`` says so), whatever ``"auto"``'s rule would pick.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import geoconv
from geoconv.errors import GeoconvError
from geoconv.grids import get_grid
from geoconv.grids.sphere import reference_padding
from geoconv.ops import CONV_PATHS, conv_path
from geoconv.ops._halo import HALO_FROM, choose_path, select
from geoconv.sizes import same_padding

DTYPE = torch.float64
SPHERES = ("equirect", "cubemap", "healpix")
SIZE = {"equirect": 8, "cubemap": 8, "healpix": 8}  # 8 x 16, 8 x 8 faces: widths up to 4 fit half a face


def modes(grid: str) -> tuple[str, ...]:
    return get_grid(grid).padding_modes


def randn(generator: torch.Generator, *shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=generator, dtype=DTYPE)


def widths_of(padding: object, face: tuple[int, int], k: int, s: int, d: int) -> tuple[int, int, int, int]:
    if padding == "same":
        return (*same_padding(face[0], k, s, d), *same_padding(face[1], k, s, d))
    if isinstance(padding, int):
        return (padding,) * 4
    return tuple(padding)  # type: ignore[return-value]


def reference_conv(grid: str, x: torch.Tensor, weight, bias, widths, mode: str, s: int, d: int, groups: int):
    """Explicit padding by the grid, then a conv with no padding (float64), in the grid's layout."""
    owner = get_grid(grid)
    planes = owner.to_planes(owner.pad(x, widths, mode))
    return owner.from_planes(F.conv2d(planes, weight, bias, s, 0, d, groups), batch=x.shape[0])


def run(module: torch.nn.Module, x: torch.Tensor, path: str, cotangent: torch.Tensor | None = None):
    """Output, then the gradients of ``x`` and the weight for a fixed cotangent, on ``path``."""
    x = x.detach().clone().requires_grad_(True)
    module.zero_grad()
    with conv_path(path):
        y = module(x)
    g = (
        torch.randn(y.shape, generator=torch.Generator().manual_seed(7), dtype=y.dtype)
        if cotangent is None
        else cotangent
    )
    y.backward(g)
    return y.detach(), x.grad, module.weight.grad.clone(), g


def close(got: torch.Tensor, expected: torch.Tensor, what: str) -> None:
    scale = max(1.0, float(expected.abs().max()))
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-12 * scale, msg=lambda m: f"{what}: {m}")


@st.composite
def cases(draw, transposed: bool = False):
    grid = draw(st.sampled_from(SPHERES))
    k, d, s, groups = (draw(st.sampled_from(v)) for v in ((1, 3, 5), (1, 2), (1, 2), (1, 2)))
    padding = draw(st.sampled_from(["same", "int"] if transposed else ["same", "int", "tuple"]))
    p = d * (k - 1) // 2
    if padding == "int":
        padding = p
    elif padding == "tuple":
        padding = tuple(draw(st.integers(0, p + 1)) for _ in range(4))
    return dict(
        grid=grid,
        # The grid's own modes and zeros (where the halo path runs) twice as often as the others.
        mode=draw(st.sampled_from((*get_grid(grid).own_modes, "zeros") * 2 + modes(grid))),
        k=k,
        d=d,
        s=s,
        groups=groups,
        padding=padding,
        bias=draw(st.booleans()),
        cin=groups * draw(st.integers(1, 2)),
        cout=groups * draw(st.integers(1, 2)),
        seed=draw(st.integers(0, 2**31 - 1)),
    )


@settings(max_examples=100, deadline=None)
@given(cases())
def test_conv_halo_matches_padded_and_the_reference(case) -> None:
    grid, mode, k, s, d, groups = (case[n] for n in ("grid", "mode", "k", "s", "d", "groups"))
    owner = get_grid(grid)
    generator = torch.Generator().manual_seed(case["seed"])
    x = randn(generator, *owner.shape(2, case["cin"], SIZE[grid]))
    face = owner.spatial_shape(x)
    widths = widths_of(case["padding"], face, k, s, d)
    out = [(face[a] + widths[2 * a] + widths[2 * a + 1] - d * (k - 1) - 1) // s + 1 for a in range(2)]
    assume(min(out) >= 1 and owner.face_problem(*out) is None)
    params = dict(kernel_size=k, stride=s, dilation=d, groups=groups, padding=case["padding"], bias=case["bias"])
    conv = geoconv.build_op("conv", case["cin"], case["cout"], grid=grid, padding_mode=mode, **params).to(DTYPE)
    with torch.no_grad():
        for parameter in conv.parameters():
            parameter.copy_(randn(generator, *parameter.shape))
    applies = select(owner, x, mode, widths, (k, k), (s, s), (d, d), rule=False) is not None
    # It applies in the grid's own modes and zeros, with widths at most half a face, the faces
    # stacking on output rows; elsewhere (reflect, replicate, ...) the padded path runs.
    own = mode == "zeros" or mode in owner.own_modes
    fits = 2 * max(widths[:2]) <= face[0] and 2 * max(widths[2:]) <= face[1]
    assert applies == (own and fits and (not owner.faces or face[0] == s * out[0]))
    y, gx, gw, g = run(conv, x, "halo")
    y_ref, gx_ref, gw_ref, _ = run(conv, x, "padded", g)
    close(y, y_ref, "output vs padded")
    close(gx, gx_ref, "input gradient vs padded")
    close(gw, gw_ref, "weight gradient vs padded")
    weight = conv.weight.detach().clone().requires_grad_(True)
    xr = x.clone().requires_grad_(True)
    reference = reference_conv(grid, xr, weight, conv.bias, widths, mode, s, d, groups)
    close(y, reference.detach(), "output vs the explicit-padding reference")
    gx_explicit, gw_explicit = torch.autograd.grad(reference, (xr, weight), g)
    close(gx, gx_explicit, "input gradient vs the reference")
    close(gw, gw_explicit, "weight gradient vs the reference")


@settings(max_examples=60, deadline=None)
@given(cases(transposed=True))
def test_conv_transpose_halo_matches_padded_and_the_adjoint(case) -> None:
    grid, mode, k, s, d, groups = (case[n] for n in ("grid", "mode", "k", "s", "d", "groups"))
    owner = get_grid(grid)
    assume(mode == "zeros" or mode in owner.own_modes)  # the planar modes' adjoint is the padded path's
    generator = torch.Generator().manual_seed(case["seed"])
    z = randn(generator, *owner.shape(2, case["cout"], SIZE[grid]))  # the transposed conv's output side
    face = owner.spatial_shape(z)
    widths = widths_of(case["padding"], face, k, s, d)
    assume(all(w <= n // 2 for w, n in zip(widths, (face[0], face[0], face[1], face[1]), strict=True)))
    out = [(face[a] + widths[2 * a] + widths[2 * a + 1] - d * (k - 1) - 1) // s + 1 for a in range(2)]
    assume(min(out) >= 1 and owner.face_problem(*out) is None and face[0] == s * out[0])
    params = dict(kernel_size=k, stride=s, dilation=d, groups=groups, padding=case["padding"], bias=case["bias"])
    convt = geoconv.build_op("conv_transpose", case["cin"], case["cout"], grid=grid, padding_mode=mode, **params)
    convt = convt.to(DTYPE)
    with torch.no_grad():
        for parameter in convt.parameters():
            parameter.copy_(randn(generator, *parameter.shape))
    x = randn(generator, 2, case["cin"], *z.shape[2:-2], *out)
    size = None if case["padding"] == "same" else face
    module = convt if size is None else _Sized(convt, size)
    assert select(owner, x, mode, widths, (k, k), (s, s), (d, d), face=face, rule=False) is not None
    y, gx, gw, g = run(module, x, "halo")
    y_ref, gx_ref, gw_ref, _ = run(module, x, "padded", g)
    close(y, y_ref, "output vs padded")
    close(gx, gx_ref, "input gradient vs padded")
    close(gw, gw_ref, "weight gradient vs padded")
    # The adjoint of the reference conv (same weight, no bias) applied to x, plus the bias.
    zr = z.clone().requires_grad_(True)
    conv_of = reference_conv(grid, zr, convt.weight.detach(), None, widths, mode, s, d, groups)
    (adjoint,) = torch.autograd.grad(conv_of, zr, x)
    bias = 0 if convt.bias is None else convt.bias.detach().view(1, -1, *[1] * (adjoint.dim() - 2))
    close(y, adjoint + bias, "output vs the adjoint of the reference conv")


class _Sized(torch.nn.Module):
    """A transposed conv asked for its output size (int padding leaves it ambiguous)."""

    def __init__(self, convt: torch.nn.Module, size: tuple[int, int]) -> None:
        super().__init__()
        self.convt, self.size = convt, size
        self.weight = convt.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.convt(x, output_size=self.size)


@pytest.mark.parametrize("grid", SPHERES)
@pytest.mark.parametrize("layout", ["planes", "strided"])
def test_halo_takes_any_memory_layout(grid: str, layout: str) -> None:
    """A planes-memory (equirect: channels-last) input and a strided view give the same values."""
    owner = get_grid(grid)
    conv = geoconv.build_op("conv", 3, 4, grid=grid).to(DTYPE)
    x = torch.randn(owner.shape(2, 3, 8), generator=torch.Generator().manual_seed(0), dtype=DTYPE)
    if layout == "planes" and not owner.faces:
        other = x.to(memory_format=torch.channels_last)
    elif layout == "planes":
        other = owner.from_planes(owner.to_planes(x).contiguous(), batch=2)
    else:
        other = torch.stack([x, torch.zeros_like(x)], dim=-1)[..., 0]
    assert torch.equal(other, x) and not other.is_contiguous()
    y, gx, gw, g = run(conv, x, "halo")
    y2, gx2, gw2, _ = run(conv, other, "halo", g)
    close(y2, y, "output")
    close(gx2, gx, "input gradient")
    close(gw2, gw, "weight gradient")


@pytest.mark.parametrize("grid", SPHERES)
@pytest.mark.parametrize(("name", "params"), [("conv", {}), ("conv", {"stride": 2}), ("conv_transpose", {})])
def test_halo_double_backward(grid: str, name: str, params: dict) -> None:
    owner = get_grid(grid)
    module = geoconv.build_op(name, 2, 2, grid=grid, **params).to(DTYPE)
    size = 4 if name == "conv" else 2
    x = torch.randn(owner.shape(1, 2, size), dtype=DTYPE, requires_grad=True)
    weight = module.weight.detach().clone().requires_grad_(True)
    bias = module.bias.detach().clone().requires_grad_(True)

    def call(t: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        with conv_path("halo"):
            return torch.func.functional_call(module, {"weight": w, "bias": b}, (t,))

    assert torch.autograd.gradcheck(call, (x, weight, bias))
    assert torch.autograd.gradgradcheck(call, (x, weight, bias))


@pytest.mark.parametrize("grid", SPHERES)
def test_gated_conv_halo_matches_padded(grid: str) -> None:
    gated = geoconv.build_op("gated_conv", 3, 4, grid=grid).to(DTYPE)
    x = torch.randn(get_grid(grid).shape(2, 3, 8), generator=torch.Generator().manual_seed(3), dtype=DTYPE)
    x1 = x.clone().requires_grad_(True)
    x2 = x.clone().requires_grad_(True)
    with conv_path("halo"):
        y1 = gated(x1)
    with conv_path("padded"):
        y2 = gated(x2)
    close(y1.detach(), y2.detach(), "output")
    g = torch.randn(y1.shape, dtype=DTYPE)
    (g1,) = torch.autograd.grad(y1, x1, g)
    (g2,) = torch.autograd.grad(y2, x2, g)
    close(g1, g2, "input gradient")
    assert select(
        get_grid(grid), x, get_grid(grid).default_padding_mode, (1, 1, 1, 1), (3, 3), (1, 1), (1, 1), rule=False
    )


@pytest.mark.parametrize("name", ["conv", "conv_transpose"])
def test_halo_compiles_fullgraph(name: str) -> None:
    torch._dynamo.reset()
    module = geoconv.build_op(name, 3, 4, grid="healpix")
    x = torch.randn(get_grid("healpix").shape(2, 3, 8), generator=torch.Generator().manual_seed(4))
    with conv_path("halo"):
        expected = module(x)
        got = torch.compile(module, fullgraph=True, backend="aot_eager")(x)
    torch._dynamo.reset()
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("grid", SPHERES)
def test_halo_under_autocast(grid: str) -> None:
    conv = geoconv.build_op("conv", 3, 4, grid=grid)
    x = torch.randn(get_grid(grid).shape(2, 3, 8), generator=torch.Generator().manual_seed(5), requires_grad=True)
    expected = conv(x).detach()
    with conv_path("halo"), torch.autocast("cpu", dtype=torch.bfloat16):
        y = conv(x)
    assert y.dtype == torch.bfloat16
    assert float((y.detach().float() - expected).norm() / expected.norm()) < 5 * 2**-8  # bf16: 8 bits
    y.float().square().sum().backward()
    assert x.grad is not None and x.grad.dtype == torch.float32 and torch.isfinite(x.grad).all()


def test_the_rule() -> None:
    assert choose_path((64, 64), 12) == choose_path((16, 16), 6) == "halo"
    assert choose_path((8, 8), 12) == choose_path((64, 64), 12, device="cuda") == "padded"
    assert choose_path((64, 128), 0) == "padded" and choose_path((128, 256), 0) == "halo"
    assert choose_path((16, 16), 6, transposed=True) == "padded" and choose_path((32, 32), 6, transposed=True) == "halo"
    assert (
        choose_path((32, 64), 0, transposed=True) == "padded" and choose_path((64, 128), 0, transposed=True) == "halo"
    )
    for (faces, transposed), pixels in HALO_FROM.items():
        assert choose_path((1, pixels), 6 if faces else 0, transposed) == "halo"
        assert choose_path((1, pixels - 1), 6 if faces else 0, transposed) == "padded"


@pytest.mark.parametrize(
    ("grid", "size", "expected"), [("healpix", 4, False), ("healpix", 16, True), ("cubemap", 16, True)]
)
def test_auto_follows_the_rule(grid: str, size: int, expected: bool) -> None:
    owner = get_grid(grid)
    x = torch.zeros(owner.shape(1, 2, size))
    chosen = select(owner, x, owner.default_padding_mode, (1, 1, 1, 1), (3, 3), (1, 1), (1, 1))
    assert (chosen is not None) == expected == (choose_path(owner.spatial_shape(x), owner.faces) == "halo")
    with conv_path("padded"):
        assert select(owner, x, owner.default_padding_mode, (1, 1, 1, 1), (3, 3), (1, 1), (1, 1)) is None
    with conv_path("halo"):
        assert select(owner, x, owner.default_padding_mode, (1, 1, 1, 1), (3, 3), (1, 1), (1, 1)) is not None
        with reference_padding():  # the reference path pads with the literal table: no halo path there
            assert select(owner, x, owner.default_padding_mode, (1, 1, 1, 1), (3, 3), (1, 1), (1, 1)) is None


def test_conv_path_refuses_an_unknown_name() -> None:
    assert CONV_PATHS == ("auto", "padded", "halo")
    choices = r"conv_path must be one of \('auto', 'padded', 'halo'\), got 'fast'"
    with pytest.raises(GeoconvError, match=choices), conv_path("fast"):
        pass
