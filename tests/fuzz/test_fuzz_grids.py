"""Fuzz the grid functions: pads, planes, layout checks, shapes, HEALPix reorderings, conversions, rotations.

Every case either returns a tensor of the documented shape (finite for finite input) or
raises :class:`~geoconv.errors.GeoconvError` naming the parameter or the shape.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geoconv.grids import convert, cubemap, get_grid, healpix, list_grids, rotate, rotation_about_z

OK, ERROR = "ok", "GeoconvError"
GRIDS = list_grids()
SPHERES = [g for g in GRIDS if g != "planar"]
EXAMPLES = max(30, settings.default.max_examples * 3 // 4)
FUZZ = settings(max_examples=EXAMPLES, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

BAD = st.sampled_from([-1, 0, "abc", "3", 2.5, math.nan, None, True, [], [1, 2, 3], (1, -1), {}])
DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int64, torch.bool, torch.complex64]
SHAPE_WORDS = ["shape", "dtype", "size", "nside", "face", "width", "height", "x", "dims"]


def _rarely(draw: st.DrawFn, one_in: int) -> bool:
    return draw(st.sampled_from([False] * (one_in - 1) + [True]))


def _size(draw: st.DrawFn, grid: str) -> int:
    if grid == "icosahedral":  # the size is a level: 5 charts of 2^r x 2^(r+1)
        return draw(st.integers(0, 3))
    return draw(st.sampled_from([1, 2, 4, 8])) if grid == "healpix" else draw(st.integers(1, 6))


@st.composite
def _tensor(draw: st.DrawFn, grid: str) -> torch.Tensor:
    """Mostly a tensor in ``grid``'s layout; sometimes a wrong shape or dtype."""
    shape = list(get_grid(grid).shape(draw(st.integers(1, 2)), draw(st.integers(1, 3)), _size(draw, grid)))
    if _rarely(draw, 4):
        index = draw(st.integers(0, len(shape) - 1))
        change = draw(st.sampled_from(["drop", "add", "set"]))
        if change == "drop":
            del shape[index]
        elif change == "add":
            shape.insert(index, 2)
        else:
            shape[index] = draw(st.integers(0, 13))
    dtype = draw(st.sampled_from(DTYPES)) if _rarely(draw, 5) else torch.float32
    generator = torch.Generator().manual_seed(draw(st.integers(0, 2**16)))
    base = torch.randn(shape, generator=generator, dtype=torch.float64)
    if dtype == torch.bool:
        return base > 0
    if dtype == torch.int64:
        return (3 * base).round().long()
    return base.to(dtype)


def _widths(draw: st.DrawFn) -> object:
    if _rarely(draw, 6):
        return draw(st.one_of(BAD, st.tuples(st.integers(-2, 3), st.integers(-2, 3), st.integers(-2, 3))))
    small = st.integers(0, 3)
    return draw(st.one_of(small, st.tuples(small, small), st.tuples(small, small, small, small)))


def _as4(widths: object) -> tuple[int, int, int, int]:
    if isinstance(widths, int):
        return (widths,) * 4  # type: ignore[return-value]
    if len(widths) == 2:  # type: ignore[arg-type]
        return (widths[0], widths[0], widths[1], widths[1])  # type: ignore[index]
    return tuple(widths)  # type: ignore[arg-type,return-value]


def _finite(x: torch.Tensor, y: torch.Tensor) -> None:
    if (x.is_floating_point() or x.is_complex()) and torch.isfinite(x).all():
        assert torch.isfinite(y).all(), "non-finite output for finite input"


@pytest.mark.parametrize("grid", GRIDS)
@FUZZ
@given(data=st.data())
def test_fuzz_pad(fuzz, grid: str, data: st.DataObject) -> None:
    layout = get_grid(grid)
    label = f"grid {grid}.pad"
    x = data.draw(_tensor(grid), label="x")
    widths = _widths(data.draw)
    modes = [None, *layout.padding_modes]
    mode = (
        data.draw(st.sampled_from(modes))
        if not _rarely(data.draw, 8)
        else data.draw(st.sampled_from(["Zeros", "foo", "", 3, "sphere", "cube", "healpix"]))
    )
    value = 0.0 if mode != "constant" else data.draw(st.sampled_from([0.0, 1.5, -2.0]))
    y = fuzz.attempt(label, ["widths", "mode", "padding_mode", *SHAPE_WORDS], layout.pad, x, widths, mode, value)
    if y is ERROR:
        return
    layout.check(x)
    top, bottom, left, right = _as4(widths)
    expected = (*x.shape[:-2], x.shape[-2] + top + bottom, x.shape[-1] + left + right)
    assert tuple(y.shape) == expected, f"pad{widths} of {tuple(x.shape)} gave {tuple(y.shape)}"
    assert y.dtype == x.dtype
    interior = y[..., top : top + x.shape[-2], left : left + x.shape[-1]]
    assert torch.equal(interior, x), "padding must keep the interior"
    _finite(x, y)
    fuzz.record(label, OK)


@pytest.mark.parametrize("grid", GRIDS)
@FUZZ
@given(data=st.data())
def test_fuzz_layout(fuzz, grid: str, data: st.DataObject) -> None:
    """``check``, ``shape``, ``to_planes``/``from_planes`` round trip."""
    layout = get_grid(grid)
    label = f"grid {grid}.check/shape/planes"
    x = data.draw(_tensor(grid), label="x")
    checked = fuzz.attempt(label, SHAPE_WORDS, layout.check, x)
    if checked is not ERROR:
        assert checked is x
        planes = layout.to_planes(x)
        assert planes.dim() == 4
        back = layout.from_planes(planes, batch=x.shape[0])
        assert torch.equal(back, x)
    size = data.draw(st.one_of(st.integers(1, 8), BAD), label="size")
    batch = 1 if not _rarely(data.draw, 5) else data.draw(st.one_of(st.integers(0, 2), BAD), label="batch")
    channels = 2 if not _rarely(data.draw, 5) else data.draw(st.one_of(st.integers(1, 3), BAD), label="channels")
    words = ["size", "nside", "height", "batch", "channels", *SHAPE_WORDS]
    shape = fuzz.attempt(label, words, layout.shape, batch, channels, size)
    if shape is not ERROR:
        assert shape[:2] == (batch, channels)
        layout.check(torch.zeros(shape))
    if checked is not ERROR and shape is not ERROR:
        fuzz.record(label, OK)


@FUZZ
@given(data=st.data())
def test_fuzz_healpix_orderings(fuzz, data: st.DataObject) -> None:
    label = "healpix nest/ring <-> faces"
    lead = data.draw(st.lists(st.integers(1, 2), max_size=2), label="leading dims")
    if data.draw(st.booleans()):
        nside = data.draw(st.sampled_from([1, 2, 4, 8]))
        length = 12 * nside * nside
    else:
        length = data.draw(st.integers(0, 100))
        nside = next((n for n in (1, 2) if 12 * n * n == length), None)
    as_numpy = _rarely(data.draw, 4)
    x = torch.randn(*lead, length, generator=torch.Generator().manual_seed(0))
    source = x.numpy() if as_numpy else x
    words = ["nside", "length", *SHAPE_WORDS]
    for forward, backward in (
        (healpix.nest_to_faces, healpix.faces_to_nest),
        (healpix.ring_to_faces, healpix.faces_to_ring),
    ):
        faces = fuzz.attempt(label, words, forward, source)
        if faces is ERROR:
            return
        assert nside is not None, f"{forward.__name__} accepted a map of {length} pixels"
        assert tuple(faces.shape) == (*lead, 12, nside, nside) and type(faces) is type(source)
        back = backward(faces)
        assert (np.array_equal if as_numpy else torch.equal)(back, source)
        # The inverse direction with a wrong face shape.
        wrong = data.draw(_tensor("healpix"), label="faces")
        flat = fuzz.attempt(label, words, backward, wrong)
        if flat is not ERROR:
            assert tuple(flat.shape) == (*wrong.shape[:-3], wrong.shape[-3] * wrong.shape[-2] * wrong.shape[-1])
    fuzz.record(label, OK)


@FUZZ
@given(data=st.data())
def test_fuzz_cubemap_equirect(fuzz, data: st.DataObject) -> None:
    label = "cubemap from/to_equirect"
    words = ["face_size", "height", "width", *SHAPE_WORDS]
    if data.draw(st.booleans()):
        x = data.draw(_tensor("equirect"), label="equirect x")
        face = data.draw(st.integers(1, 6) if not _rarely(data.draw, 6) else BAD, label="face_size")
        y = fuzz.attempt(label, words, cubemap.from_equirect, x, face)
        if y is ERROR:
            return
        assert tuple(y.shape) == (*x.shape[:2], 6, face, face)
    else:
        x = data.draw(_tensor("cubemap"), label="cubemap x")
        height = data.draw(st.integers(1, 6) if not _rarely(data.draw, 6) else BAD, label="height")
        width = data.draw(st.one_of(st.none(), st.integers(1, 12)) if not _rarely(data.draw, 6) else BAD)
        y = fuzz.attempt(label, words, cubemap.to_equirect, x, height, width)
        if y is ERROR:
            return
        assert tuple(y.shape) == (*x.shape[:2], height, 2 * height if width is None else width)
    assert y.dtype == x.dtype
    _finite(x, y)
    fuzz.record(label, OK)


@FUZZ
@given(data=st.data())
def test_fuzz_convert(fuzz, data: st.DataObject) -> None:
    label = "grids.convert"
    source = data.draw(st.sampled_from(SPHERES if not _rarely(data.draw, 6) else ["planar", "sphere"]), label="source")
    target = data.draw(st.sampled_from(SPHERES if not _rarely(data.draw, 6) else ["planar", "Healpix"]), label="target")
    x = data.draw(_tensor(source if source in GRIDS else "equirect"), label="x")
    size = data.draw(
        st.one_of(st.sampled_from([1, 2, 4]), st.tuples(st.integers(1, 4), st.integers(1, 8)))
        if not _rarely(data.draw, 6)
        else BAD,
        label="size",
    )
    words = ["grid", "size", "nside", "planar", *SHAPE_WORDS]
    y = fuzz.attempt(label, words, convert, x, source, target, size)
    if y is ERROR:
        return
    layout = get_grid(target)
    layout.check(y)
    assert y.shape[:2] == x.shape[:2]
    if target == "equirect":
        expected = (size, 2 * size) if isinstance(size, int) else tuple(size)
        assert tuple(y.shape[-2:]) == expected
    else:
        assert tuple(y.shape[-2:]) == tuple(layout.shape(1, 1, size)[-2:])
    _finite(x, y)
    fuzz.record(label, OK)


@FUZZ
@given(data=st.data())
def test_fuzz_rotate(fuzz, data: st.DataObject) -> None:
    label = "grids.rotate"
    grid = data.draw(st.sampled_from(SPHERES if not _rarely(data.draw, 8) else ["planar"]), label="grid")
    x = data.draw(_tensor(grid), label="x")
    kind = data.draw(st.sampled_from(["z", "random"])) if not _rarely(data.draw, 6) else "bad"
    if kind == "z":
        rotation: object = rotation_about_z(data.draw(st.sampled_from([0.0, math.pi / 2, 0.3, math.pi])))
    elif kind == "random":
        q = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64))[0]
        rotation = q * torch.sign(torch.linalg.det(q))
    else:
        rotation = data.draw(
            st.sampled_from([torch.eye(2), -torch.eye(3), 2 * torch.eye(3), "eye", None, torch.full((3, 3), math.nan)])
        )
    size = data.draw(st.sampled_from([None, 1, 2, 4]) if not _rarely(data.draw, 6) else BAD, label="size")
    method = data.draw(st.sampled_from(["auto", "resample"] if not _rarely(data.draw, 10) else ["exact"]))
    words = ["rotation", "R", "method", "grid", "size", "nside", "planar", *SHAPE_WORDS]
    y = fuzz.attempt(label, words, rotate, x, grid, rotation, size, method)
    if y is ERROR:
        return
    layout = get_grid(grid)
    layout.check(y)
    assert y.shape[:2] == x.shape[:2]
    if size is None:
        assert y.shape == x.shape
    _finite(x, y)
    fuzz.record(label, OK)
