r"""The halo correction: a spherical conv as torch's zero-padded conv plus a thin border term.

Padding is linear. With :math:`P` the grid's padding, :math:`P_0` zero padding by the same
widths and :math:`D = P - P_0` (the halo: the padded values beyond each face border, zero inside),

.. math::

    \operatorname{conv}(P x) = \operatorname{conv}(P_0 x) + \operatorname{conv}(D x),
    \qquad D = D_\text{top} + D_\text{bottom} + D_\text{left} + D_\text{right},

the four with disjoint supports (the rows above and below a face, corners included; the
columns beside it, interior rows only), so nothing is counted twice or missed. The first term
is torch's conv with its implicit zero padding: nothing padded is kept for the backward pass.
Each other term touches a band of outputs along one border, with the kernel taps that reach
the halo only: with top width :math:`t`, stride :math:`s`, dilation :math:`d`, output rows
:math:`i < \lceil t/s\rceil`, kernel rows :math:`u < \lceil t/d\rceil`, a "valid" conv over
:math:`s(\lceil t/s\rceil - 1) + d(\lceil t/d\rceil - 1) + 1` padded rows (one for 3x3). The
strips are gathered with the grid's padding table restricted to them
(:meth:`~geoconv.grids._gather.PadTable.taps_at`, once per shape): :math:`O(\text{perimeter})`.
The four bands (left/right transposed into rows) run as one grouped conv.

Faces are folded without a copy: a contiguous ``(B, C, F, H, W)`` is convolved as the stacked
image ``(B, C, F H, W)`` (when ``H = s H'``), planes memory ``(B F, C, H, W)`` as planes. On
the stacked image torch reads the neighbouring face's rows where zeros belong: the top and
bottom strips subtract them (the seams). Torch pads symmetrically; asymmetric widths
(TensorFlow's "same" with stride 2, even kernels) run with a wider padding and a cropped
output (:class:`~geoconv.ops._common.ConvAxis`). The transposed conv is the adjoint term by
term, :math:`y = \operatorname{crop}(\text{full}) + P_\text{halo}^\top(\text{strips of full})`:
the fold-back touches only the strips. One autograd function holds both directions, each
one's backward the other (differentiable: double backward works) plus
:math:`\partial_w = \partial_w^\text{main} + \sum_\text{bands} \partial_w^\text{taps}`.

Paths and the rule
------------------
:func:`conv_path` picks the path of ``conv``, ``gated_conv`` and ``conv_transpose``.
``"halo"`` runs wherever it applies: a :class:`~geoconv.grids.sphere.SphericalGrid` in its
own mode (outside :func:`~geoconv.grids.sphere.reference_padding`) or ``zeros``; a real
floating dtype; widths at most half a face; faces stacked on output rows (``H = s H'``).
Elsewhere (the planar modes ``reflect``/``replicate``/``circular``/``constant``, complex
dtypes, plugin grids that are not spherical, odd strided faces) the padded path runs.
``"auto"`` (:func:`choose_path`) takes the halo path on the CPU from :data:`HALO_FROM` pixels
per face, the padded path below that and on other devices (not measured there).

Measured by the benchmark (``geoconv run experiment=benchmark``: fwd+bwd paired with the floor
``nn.Conv2d`` on the folded faces, median of per-pair ratios; B 4, 32 -> 32 channels, 3x3,
float32, 2 threads, torch 2.13; the README has the table): padded / halo path, HEALPix nside
64: 1.50 / 1.30; cube map face 64: 1.46 / 1.32; equirect 128x256: 1.18 / 1.17; peak memory
over the floor's 1.27-1.55 / 1.01-1.02. The main conv on stacked faces is within 4 % of the
floor; the border term costs the rest: gathers and scatters of single columns touch a cache
line per pixel (about a pass over the tensor each). The sizes of the rule come
from a sweep (:data:`MEASURED`): smaller faces run faster padded.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch.fx.experimental.symbolic_shapes import guard_scalar

from geoconv._cache import cached, register_builder
from geoconv.errors import ParameterError
from geoconv.grids import Grid, get_grid
from geoconv.grids._gather import PadTable
from geoconv.grids.sphere import SphericalGrid
from geoconv.ops._common import ConvAxis

__all__ = ["CONV_PATHS", "HALO_FROM", "MEASURED", "HaloGeometry", "choose_path", "conv_path", "halo_conv", "select"]

CONV_PATHS = ("auto", "padded", "halo")
"""The names :func:`conv_path` takes."""

HALO_FROM = {(True, False): 16 * 16, (True, True): 32 * 32, (False, False): 128 * 256, (False, True): 64 * 128}
"""``(faces, transposed) -> pixels``: ``"auto"`` takes the halo path on the CPU from this face size
(grids of faces: cube map, HEALPix; or one face: equirect), where :data:`MEASURED` has it faster."""

MEASURED: dict[str, dict[int, tuple[float, float]]] = {
    "conv healpix": {8: (2.94, 2.74), 16: (2.38, 2.09), 32: (2.10, 1.79), 64: (1.70, 1.50)},
    "conv cubemap": {8: (2.91, 3.14), 16: (2.16, 2.17), 32: (1.68, 1.62), 64: (1.48, 1.09)},
    "conv equirect": {16: (1.97, 3.09), 32: (1.58, 2.05), 64: (1.33, 1.54), 128: (1.58, 1.49)},
    "conv_transpose healpix": {8: (2.35, 2.60), 16: (2.06, 2.05), 32: (2.16, 1.52), 64: (1.74, 1.19)},
    "conv_transpose cubemap": {8: (2.31, 3.00), 16: (2.11, 2.24), 32: (2.02, 1.84), 64: (1.85, 1.21)},
    "conv_transpose equirect": {16: (1.89, 2.68), 32: (1.68, 2.01), 64: (1.62, 1.46)},
}
"""The sweep behind :data:`HALO_FROM`: op and grid -> resolution (nside, face, equirect H) ->
(padded, halo), the mean of 2 runs' medians of paired fwd+bwd ratios to the floor (as above)."""


class _Path(threading.local):
    name = "auto"


_PATH = _Path()  # this thread's path


@contextlib.contextmanager
def conv_path(name: str) -> Iterator[None]:
    """Run ``conv``, ``gated_conv`` and ``conv_transpose`` on one path in this thread.

    ``name``: ``"padded"`` pads every face into planes, then convolves with no padding; ``"halo"``
    runs torch's zero-padded conv plus the border correction wherever it applies (the padded path
    elsewhere); ``"auto"`` applies :func:`choose_path`. Another name raises a ``GeoconvError``.

    Examples
    --------
    >>> import torch, geoconv
    >>> conv, x = geoconv.build_op("conv", 2, 3, grid="healpix").double(), torch.randn(1, 2, 12, 8, 8).double()
    >>> with conv_path("padded"):
    ...     padded = conv(x)
    >>> with conv_path("halo"):
    ...     bool((conv(x) - padded).abs().max() < 1e-12)
    True
    """
    if name not in CONV_PATHS:
        raise ParameterError(f"conv_path must be one of {CONV_PATHS}, got {name!r}")
    previous, _PATH.name = _PATH.name, name
    try:
        yield
    finally:
        _PATH.name = previous


def choose_path(face: tuple[int, int], faces: int, transposed: bool = False, device: str = "cpu") -> str:
    """The rule of ``"auto"`` where the halo path applies: ``"halo"`` from :data:`HALO_FROM` pixels, on the CPU.

    >>> choose_path((64, 64), 12), choose_path((8, 8), 6), choose_path((64, 128), 0), choose_path((64, 128), 0, True)
    ('halo', 'padded', 'padded', 'halo')
    """
    return "halo" if device == "cpu" and face[0] * face[1] >= HALO_FROM[faces > 0, transposed] else "padded"


# -- geometry ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Space:
    """Pixel ``(face, row, col)`` of channel ``c`` in a contiguous buffer's batch element: ``face * face +
    c * channel + (row + row0) * row + col + col0``; ``planes`` faces in dim 0 (``(B F, C, H, W)``), or 0."""

    face: int
    channel: int
    row: int
    row0: int = 0
    col0: int = 0
    planes: int = 0


@dataclass(frozen=True)
class _Group:
    """Border bands of one shape, convolved as one grouped conv (strips in row form).

    ``shape`` ``(F, nb, n, L, n', L')``: strips ``(B F, nb C, n, L)``, kernels
    ``(nb O, C / g, taps, k)`` (``kernel``: their flat positions in the kernel), outputs
    ``(B F, nb O, n', L')``. ``source`` ``(3, F, nb, 1, n, L)``: face, row and column of
    each strip pixel's first tap, ``mask`` its weight (``None``: all 1); ``patch``: the few
    second taps (corner averages) and ``seam`` (stacked faces only): minus the neighbour's
    pixel torch read, each as strip position ``(f nb + band, a L + b)``, source ``(3, R)``,
    weight; ``target`` ``(3, F, nb, 1, n', L')``: the output pixels.
    """

    shape: tuple[int, ...]
    source: torch.Tensor
    mask: torch.Tensor | None
    patch: tuple[torch.Tensor, ...] | None
    seam: tuple[torch.Tensor, ...] | None
    target: torch.Tensor
    kernel: torch.Tensor
    stride: tuple[int, int]
    dilation: tuple[int, int]
    cache: dict = field(default_factory=dict, compare=False, repr=False)

    def index(self, name: str, channels: int, space: _Space | None = None) -> torch.Tensor:
        """Flat indices ``(1, M C)`` of ``source``/``target``/``"patch.source"``/``"seam.entry"``/...; kept."""
        key, compiling = (name, channels, space), torch.compiler.is_compiling()
        if not compiling and key in self.cache:
            return self.cache[key]
        step = torch.arange(channels, device=self.source.device)
        sparse, part = name.split(".") if "." in name else (None, name)
        position, coords = (None, getattr(self, name)) if sparse is None else getattr(self, sparse)[:2]
        if part == "entry":  # positions in the strips (B, F nb, C, n L)
            n = self.shape[2] * self.shape[3]
            found = position[0] * (channels * n) + step.view(-1, 1) * n + position[1]
        else:
            face, row, col = coords
            base = face * space.face + (row + space.row0) * space.row + col + space.col0  # type: ignore[union-attr]
            step = step * space.channel  # type: ignore[union-attr]
            found = base + (step.view(1, 1, -1, 1, 1) if sparse is None else step.view(-1, 1))
        if not compiling:
            self.cache[key] = found.reshape(1, -1)
        return found.reshape(1, -1)

    def weight(self, name: str, dtype: torch.dtype) -> torch.Tensor | None:
        """``mask`` or a sparse list's weights in ``dtype`` (kept)."""
        value = self.mask if name == "mask" else getattr(self, name)[2]
        if value is None or torch.compiler.is_compiling():
            return None if value is None else value.to(dtype)
        return self.cache.setdefault((name, dtype), value.to(dtype))

    def kernels(self, weight: torch.Tensor) -> torch.Tensor:
        """The bands' kernel taps: ``(nb O, C / g, taps, k)``."""
        o, c, nb, *rest = *weight.shape[:2], *self.kernel.shape
        taps = weight.reshape(o, c, -1)[:, :, self.kernel.reshape(-1)].view(o, c, nb, *rest)
        return taps.permute(2, 0, 1, 3, 4).reshape(nb * o, c, *rest)

    def add_grad(self, grad: torch.Tensor, kernels: torch.Tensor) -> None:
        """Add the gradient of :meth:`kernels` onto ``grad`` (the whole kernel's), in place."""
        o, c, nb = *grad.shape[:2], self.kernel.shape[0]
        part = kernels.reshape(nb, o, c, -1).permute(1, 2, 0, 3).reshape(o, c, -1)
        grad.view(o, c, -1).index_add_(2, self.kernel.reshape(-1), part)


@dataclass(frozen=True)
class HaloGeometry:
    """What the halo path needs for one grid, mode, face size, widths and kernel (cached)."""

    faces: int  # 0: one face, layout (B, C, H, W)
    rows: ConvAxis
    cols: ConvAxis
    groups: tuple[_Group, ...]


def _band(kind: int, band: tuple[int, ...], rows: ConvAxis, cols: ConvAxis, table: PadTable | None, faces: int):
    """One band in row form: taps ``(F, n, L, K)`` and weights of its strip, its seam's, its outputs, its kernel."""
    side, out0, out1, tap0, tap1, start, stop, halo0, halo1 = band
    h, w, across = rows.size, cols.size, cols if kind == 0 else rows
    a, b = np.meshgrid(np.arange(stop - start), np.arange(across.extent), indexing="ij")
    i, j = np.meshgrid(np.arange(out0, out1), np.arange(across.out), indexing="ij")
    u, v = np.meshgrid(np.arange(tap0, tap1), np.arange(across.kernel), indexing="ij")
    if kind == 0:
        r, c, support = start + a, b, (start + a >= halo0) & (start + a < halo1)
    else:
        r, c, i, j, u, v = b, start + a, j, i, v, u
        support = (c >= halo0) & (c < halo1) & (r >= rows.before) & (r < rows.before + h)
    f = np.arange(faces)[:, None, None]
    taps, weights = np.zeros((faces, *r.shape, 1), np.int64), np.zeros((faces, *r.shape, 1))
    if table is not None:
        taps, weights = table.taps_at(f, r, c)
        weights = np.where(support[..., None], weights, 0.0)
    seam = (np.zeros_like(taps[..., :1]), np.zeros_like(weights[..., :1]))
    if kind == 0 and faces > 1:  # stacked faces: torch read the neighbour's rows over the interior columns
        neighbour = f + side
        valid = support & (c >= cols.before) & (c < cols.before + w) & (neighbour >= 0) & (neighbour < faces)
        row = np.clip(r + (h - rows.before if side < 0 else -rows.before - h), 0, h - 1)
        pixel = (np.clip(neighbour, 0, faces - 1) * h + row) * w + np.clip(c - cols.before, 0, w - 1)
        seam = (pixel[..., None], np.where(valid, -1.0, 0.0)[..., None])
    return taps, weights, seam, np.stack(np.broadcast_arrays(f, i[None], j[None])), u * cols.kernel + v


def _build_groups(rows: ConvAxis, cols: ConvAxis, table: PadTable | None, faces: int, device: torch.device):
    found: dict[tuple, list] = {}
    for kind, axis in ((0, rows), (1, cols)):
        along, across = (rows, cols) if kind == 0 else (cols, rows)
        for band in axis.bands():
            member = _band(kind, band, rows, cols, table, faces)
            if member[1].any() or member[2][1].any():
                key = (*member[0].shape[1:3], *member[3].shape[2:], *member[4].shape)
                key += (along.stride, across.stride, along.dilation, across.dilation)
                found.setdefault(key, []).append(member)

    def tensor(a: np.ndarray, dtype: torch.dtype = torch.int64) -> torch.Tensor:
        return torch.as_tensor(np.ascontiguousarray(a), dtype=dtype, device=device)

    def coordinates(pixels: np.ndarray) -> np.ndarray:  # flat (F H W) -> face, row, column
        return np.stack([pixels // (rows.size * cols.size), pixels // cols.size % rows.size, pixels % cols.size])

    groups = []
    for (n, length, *outs, _, _, s_along, s_across, d_along, d_across), members in found.items():
        most = max(m[0].shape[-1] for m in members)
        taps, weights = (
            np.stack([np.pad(m[k], [(0, 0)] * 3 + [(0, most - m[k].shape[-1])]) for m in members], 1) for k in (0, 1)
        )  # (F, nb, n, L, K)

        def sparse(taps: np.ndarray, weights: np.ndarray, nb: int = len(members), length: int = length):
            f, band, a, b, _ = entries = np.nonzero(weights)
            if not len(f):
                return None
            position = np.stack([f * nb + band, a * length + b])
            return tensor(position), tensor(coordinates(taps[entries])), tensor(weights[entries], torch.float64)

        mask = weights[..., 0][:, :, None]
        groups.append(
            _Group(
                (faces, len(members), n, length, *outs),
                tensor(coordinates(taps[..., 0])[:, :, :, None]),
                None if (mask == 1).all() else tensor(mask, torch.float64),
                sparse(taps[..., 1:], weights[..., 1:]),
                sparse(*(np.stack([m[2][k] for m in members], 1) for k in (0, 1))),
                tensor(np.stack([m[3] for m in members], 2)[:, :, :, None]),
                tensor(np.stack([m[4] for m in members])),
                (s_along, s_across),
                (d_along, d_across),
            )
        )
    return tuple(groups)


@register_builder("halo_geometry")
def _build_geometry(grid: str, mode: str, *numbers: int, device: torch.device) -> HaloGeometry:
    """``numbers``: the face's spatial shape, then widths (4), kernel, stride, dilation (2 each)."""
    owner: SphericalGrid = get_grid(grid)  # type: ignore[assignment]
    spatial, (top, bottom, left, right, kh, kw, sh, sw, dh, dw) = tuple(numbers[:-10]), numbers[-10:]
    rows, cols = ConvAxis(spatial[-2], top, bottom, kh, sh, dh), ConvAxis(spatial[-1], left, right, kw, sw, dw)
    table = None if mode == "zeros" else owner.padding_table(spatial, (top, bottom, left, right), mode)
    return HaloGeometry(owner.faces, rows, cols, _build_groups(rows, cols, table, max(owner.faces, 1), device))


def select(
    grid: Grid,
    x: torch.Tensor,
    mode: str,
    widths: tuple[int, int, int, int],
    kernel: tuple[int, int],
    stride: tuple[int, int],
    dilation: tuple[int, int],
    face: tuple[int, int] | None = None,
    rule: bool = True,
) -> HaloGeometry | None:
    """The geometry if this call takes the halo path (:func:`conv_path`; the rule with ``rule``), else ``None``.

    ``x``: the conv's input; for a transposed conv, its input, with ``face`` its output's face size.
    """
    if _PATH.name == "padded" or not isinstance(grid, SphericalGrid) or not x.is_floating_point() or not x.numel():
        return None
    height, width = grid.spatial_shape(x) if face is None else face
    auto = rule and _PATH.name == "auto"
    if auto and choose_path((height, width), grid.faces, face is not None, x.device.type) == "padded":
        return None
    if 2 * max(widths[:2]) > height or 2 * max(widths[2:]) > width or not (mode == "zeros" or grid.plans_padding(mode)):
        return None
    # One cache lookup (a second in one torch.compile trace would miss); guard_scalar specialises to the sizes.
    numbers = (*x.shape[2:-2], height, width, *widths, *kernel, *stride, *dilation)
    geometry: HaloGeometry = cached("halo_geometry", x.device, grid.name, mode, *(guard_scalar(n) for n in numbers))  # type: ignore[assignment]
    rows, cols = geometry.rows, geometry.cols
    wrong = any(a.out < 1 or a.tpad < 0 or a.tout < a.crop + a.size for a in (rows, cols))
    wrong |= bool(geometry.faces) and rows.size != rows.stride * rows.out  # stacked faces start on output rows
    wrong |= face is not None and (rows.out, cols.out) != grid.spatial_shape(x)
    return None if wrong else geometry


# -- tensors -------------------------------------------------------------------------------------


def _conv_backward(grad, x, weight, stride, padding, dilation, groups, mask, transposed=False, extra=(0, 0)):
    bias = [weight.shape[1] * groups if transposed else weight.shape[0]] if mask[2] else None
    return torch.ops.aten.convolution_backward(
        grad, x, weight, bias, stride, padding, dilation, transposed, extra, groups, mask
    )


@dataclass(frozen=True)
class _Conv:
    """One call's geometry and groups; torch convolves stacked faces ``(B, C, F H, W)`` or planes ``(B F, C, H, W)``."""

    geometry: HaloGeometry
    groups: int
    stride: tuple[int, int] = field(init=False)
    dilation: tuple[int, int] = field(init=False)
    faces: int = field(init=False)

    def __post_init__(self) -> None:
        rows, cols = self.geometry.rows, self.geometry.cols
        object.__setattr__(self, "stride", (rows.stride, cols.stride))
        object.__setattr__(self, "dilation", (rows.dilation, cols.dilation))
        object.__setattr__(self, "faces", max(self.geometry.faces, 1))

    def stacked(self, t: torch.Tensor) -> bool:
        """Whether to convolve ``t`` (grid layout) stacked: its memory is, or is neither layout."""
        return not self.geometry.faces or t.is_contiguous() or not t.transpose(1, 2).is_contiguous()

    def fold(self, t: torch.Tensor, stacked: bool) -> torch.Tensor:
        """Grid layout to what torch convolves (a view where the memory allows, else a copy)."""
        if not self.geometry.faces:
            return t.contiguous()
        return t.contiguous().flatten(2, 3) if stacked else t.transpose(1, 2).contiguous().flatten(0, 1)

    def unfold(self, t: torch.Tensor, stacked: bool, rows: tuple[int, int], cols: tuple[int, int]) -> torch.Tensor:
        """Torch's output cropped to ``rows``/``cols`` ((start, length) per face), in the grid's layout (a view)."""
        faces = self.faces if stacked else 1
        if (rows[0], cols[0], faces * rows[1], cols[1]) != (0, 0, *t.shape[-2:]):
            t = t[..., rows[0] : rows[0] + faces * rows[1], cols[0] : cols[0] + cols[1]]
        if not self.geometry.faces:
            return t
        return t.unflatten(2, (self.faces, rows[1])) if stacked else t.unflatten(0, (-1, self.faces)).transpose(1, 2)

    def space(self, t: torch.Tensor, stacked: bool, rows: int, row0: int = 0, col0: int = 0) -> _Space:
        """The :class:`_Space` of torch's contiguous 4-D ``t`` with ``rows`` rows per face."""
        height, width = t.shape[-2:]
        if stacked:
            return _Space(rows * width, height * width, width, row0, col0)
        return _Space(t.shape[1] * height * width, height * width, width, row0, col0, self.faces)

    def _flat(self, t: torch.Tensor, space: _Space) -> tuple[torch.Tensor, int, int]:
        batch = t.shape[0] // space.planes if space.planes else t.shape[0]
        return t.view(batch, -1), batch, t.shape[1]

    def strips(self, group: _Group, z: torch.Tensor, space: _Space) -> torch.Tensor:
        """The group's halo strips of torch's buffer ``z``: ``(B F, nb C, n, L)``."""
        flat, batch, channels = self._flat(z, space)
        faces, nb, n, length = group.shape[:4]
        strips = torch.gather(flat, 1, group.index("source", channels, space).expand(batch, -1))
        strips = strips.view(batch, faces, nb, channels, n, length)
        mask = group.weight("mask", z.dtype)
        strips = strips if mask is None else strips * mask
        for sparse in ("patch", "seam")[: 1 if space.planes else 2]:
            if getattr(group, sparse) is not None:
                taps = torch.gather(flat, 1, group.index(sparse + ".source", channels, space).expand(batch, -1))
                taps = (taps.view(batch, channels, -1) * group.weight(sparse, z.dtype)).view(batch, -1)
                entries = group.index(sparse + ".entry", channels).expand(batch, -1)
                strips = strips.reshape(batch, -1).scatter_add(1, entries, taps)
        return strips.reshape(-1, nb * channels, n, length)

    def fold_back(self, group: _Group, strips: torch.Tensor, z: torch.Tensor, space: _Space) -> None:
        """The adjoint of :meth:`strips`: add ``strips`` onto torch's buffer ``z`` where they came from (in place)."""
        out, batch, channels = self._flat(z, space)
        flat = strips.reshape(batch, -1)
        mask = group.weight("mask", z.dtype)
        values = flat if mask is None else (strips.view(batch, *group.shape[:2], channels, -1) * mask.flatten(-2))
        out.scatter_add_(1, group.index("source", channels, space).expand(batch, -1), values.reshape(batch, -1))
        for sparse in ("patch", "seam")[: 1 if space.planes else 2]:
            if getattr(group, sparse) is not None:
                taps = torch.gather(flat, 1, group.index(sparse + ".entry", channels).expand(batch, -1))
                taps = (taps.view(batch, channels, -1) * group.weight(sparse, z.dtype)).view(batch, -1)
                out.scatter_add_(1, group.index(sparse + ".source", channels, space).expand(batch, -1), taps)

    def band(self, group: _Group, y: torch.Tensor, space: _Space) -> torch.Tensor:
        """The group's output pixels of torch's buffer ``y``: ``(B F, nb O, n', L')``."""
        flat, batch, channels = self._flat(y, space)
        part = torch.gather(flat, 1, group.index("target", channels, space).expand(batch, -1))
        return part.view(-1, group.shape[1] * channels, *group.shape[4:])

    def scatter(self, group: _Group, values: torch.Tensor, y: torch.Tensor, space: _Space) -> None:
        """The adjoint of :meth:`band`: add ``values`` onto the output pixels of ``y`` (in place)."""
        flat, batch, channels = self._flat(y, space)
        flat.scatter_add_(1, group.index("target", channels, space).expand(batch, -1), values.reshape(batch, -1))

    def band_conv(self, group: _Group, strips: torch.Tensor, weight: torch.Tensor, transposed: bool = False):
        groups, kernels = self.groups * group.shape[1], group.kernels(weight)
        if transposed:
            return F.conv_transpose2d(strips, kernels, None, group.stride, 0, 0, groups, group.dilation)
        return F.conv2d(strips, kernels, None, group.stride, 0, group.dilation, groups)

    def band_backward(self, group: _Group, grad, strips, weight, mask: tuple[bool, bool] = (False, True)):
        groups, kernels = self.groups * group.shape[1], group.kernels(weight)
        return _conv_backward(grad, strips, kernels, group.stride, (0, 0), group.dilation, groups, (*mask, False))

    def apply(self, z: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, keep: list | None = None):
        """``conv(P z)``: torch's conv plus the bands, in the grid's layout; ``keep`` gets the strips."""
        rows, cols = self.geometry.rows, self.geometry.cols
        stacked = self.stacked(z)
        z4 = self.fold(z, stacked)
        y = F.conv2d(z4, weight, bias, self.stride, (rows.pad, cols.pad), self.dilation, self.groups)
        source, target = self.space(z4, stacked, rows.size), self.space(y, stacked, rows.out, rows.skip, cols.skip)
        for group in self.geometry.groups:
            strips = self.strips(group, z4, source)
            self.scatter(group, self.band_conv(group, strips, weight), y, target)
            if keep is not None:
                keep.append(strips)
        return self.unfold(y, stacked, (rows.skip, rows.out), (cols.skip, cols.out))

    def adjoint(self, y: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, keep: list | None = None):
        """``P^T conv^T y``: torch's transposed conv, cropped, plus the strips folded back; ``keep`` gets the bands."""
        rows, cols = self.geometry.rows, self.geometry.cols
        # mkldnn's strided transposed conv is ~30 % slower on the tall stacked image: run it on planes.
        stacked = self.stacked(y) and not (self.geometry.faces and max(self.stride) > 1)
        y4 = self.fold(y, stacked)
        padding, extra = (rows.tpad, cols.tpad), (rows.extra, cols.extra)
        led = F.pad(y4, (cols.lead, 0, rows.lead, 0)) if rows.lead or cols.lead else y4  # see ConvAxis
        z = F.conv_transpose2d(led, weight, bias, self.stride, padding, extra, self.groups, self.dilation)
        source, target = self.space(z, stacked, rows.size, rows.crop, cols.crop), self.space(y4, stacked, rows.out)
        for group in self.geometry.groups:
            band = self.band(group, y4, target)
            self.fold_back(group, self.band_conv(group, band, weight, transposed=True), z, source)
            if keep is not None:
                keep.append(band)
        return self.unfold(z, stacked, (rows.crop, rows.size), (cols.crop, cols.size))

    def weight_grad(self, z: torch.Tensor, y: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        r""":math:`\partial_w \langle \operatorname{conv}_w(P z), y\rangle`: the main term, then each band's taps."""
        rows, cols = self.geometry.rows, self.geometry.cols
        stacked = self.stacked(z)
        z4, y4 = self.fold(z, stacked), self.fold(y, stacked)
        after = (rows.torch_out - rows.skip - rows.out, cols.torch_out - cols.skip - cols.out)
        padded = (
            y4 if not (rows.skip or cols.skip or any(after)) else F.pad(y4, (cols.skip, after[1], rows.skip, after[0]))
        )
        mask = (False, True, False)
        grad = _conv_backward(padded, z4, weight, self.stride, (rows.pad, cols.pad), self.dilation, self.groups, mask)[
            1
        ]
        source, target = self.space(z4, stacked, rows.size), self.space(y4, stacked, rows.out)
        for group in self.geometry.groups:
            part = self.band_backward(group, self.band(group, y4, target), self.strips(group, z4, source), weight)
            group.add_grad(grad, part[1])
        return grad


class _HaloConv(torch.autograd.Function):
    """``conv(P x)`` (or its adjoint); each one's backward is the other. The forward's strips (bands) are kept
    for the weight gradient; under double backward they are gathered again, so that they depend on ``x``."""

    @staticmethod
    def forward(ctx, x, weight, bias, conv: _Conv, transposed: bool):  # type: ignore[override]
        kept: list[torch.Tensor] = []
        y = conv.adjoint(x, weight, bias, kept) if transposed else conv.apply(x, weight, bias, kept)
        ctx.save_for_backward(x, weight, *kept)
        ctx.conv, ctx.transposed = conv, transposed
        return y

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        x, weight, *kept = ctx.saved_tensors
        conv: _Conv = ctx.conv
        rows, cols = conv.geometry.rows, conv.geometry.cols
        need, transposed = ctx.needs_input_grad[:3], ctx.transposed
        if not ((rows.texact and cols.texact) if transposed else (rows.exact and cols.exact)):
            z, y = (grad, x) if transposed else (x, grad)  # the conv's input and output sides
            gx = (
                None
                if not need[0]
                else conv.apply(grad, weight, None)
                if transposed
                else conv.adjoint(grad, weight, None)
            )
            gw = conv.weight_grad(z, y, weight) if need[1] else None
            gb = grad.sum([d for d in range(grad.dim()) if d != 1]) if need[2] else None
            return gx, gw, gb, None, None
        # Torch's own backward for the main term (one call, as nn.Conv2d's), then the bands; in
        # the larger side's layout (the conv's input x; the transposed conv's output grad).
        stacked = conv.stacked(grad if transposed else x)
        g4, x4 = conv.fold(grad, stacked), conv.fold(x, stacked)
        padding, extra = (
            ((rows.tpad, cols.tpad), (rows.extra, cols.extra)) if transposed else ((rows.pad, cols.pad), (0, 0))
        )
        lead = (cols.lead, 0, rows.lead, 0) if transposed and (rows.lead or cols.lead) else None
        gx, gw, gb = _conv_backward(
            g4,
            x4 if lead is None else F.pad(x4, lead),
            weight,
            conv.stride,
            padding,
            conv.dilation,
            conv.groups,
            need,
            transposed,
            extra,
        )
        if lead is not None and gx is not None:
            gx = gx[..., rows.lead :, cols.lead :].contiguous()
        z4, y4 = (g4, x4) if transposed else (x4, g4)
        source, target = conv.space(z4, stacked, rows.size), conv.space(y4, stacked, rows.out)
        fresh = torch.is_grad_enabled() or not kept  # double backward: strips that depend on x
        for i, group in enumerate(conv.geometry.groups):
            if transposed:
                band, strips = conv.band(group, y4, target) if fresh else kept[i], conv.strips(group, z4, source)
                if need[0]:
                    conv.scatter(group, conv.band_conv(group, strips, weight), gx, target)
                if need[1]:
                    group.add_grad(gw, conv.band_backward(group, band, strips, weight)[1])
            else:
                strips = conv.strips(group, z4, source) if fresh else kept[i]
                d_strips, d_kernels, _ = conv.band_backward(
                    group, conv.band(group, y4, target), strips, weight, need[:2]
                )
                if need[0]:
                    conv.fold_back(group, d_strips, gx, source)
                if need[1]:
                    group.add_grad(gw, d_kernels)
        if gx is not None:
            size = (rows.out, cols.out) if transposed else (rows.size, cols.size)
            gx = conv.unfold(gx, stacked, (0, size[0]), (0, size[1]))
        return gx, gw, gb, None, None


def halo_conv(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    geometry: HaloGeometry,
    groups: int,
    transposed: bool = False,
) -> torch.Tensor:
    r"""The halo path of ``conv`` (``transposed``: of ``conv_transpose``), in the grid's layout.

    ``x``: ``(B, C_in, F, H, W)`` or ``(B, C_in, H, W)``, the conv's input (``transposed``: the
    transposed conv's input, the conv's output side); ``weight``: ``(C_out, C_in / groups, kh, kw)``
    (``transposed``: ``(C_in, C_out / groups, kh, kw)``); ``bias``: ``(C_out,)``; ``geometry``
    from :func:`select`. Returns a view of torch's output (stacked faces, or planes) in the grid's
    layout: :math:`\operatorname{conv}(P x)`, or :math:`P^\top \operatorname{conv}^\top x`, plus the bias.
    """
    conv, device = _Conv(geometry, groups), x.device.type
    if not torch.is_autocast_enabled(device):
        return _HaloConv.apply(x, weight, bias, conv, transposed)
    with torch.autocast(device, enabled=False):  # cast as autocast would for torch's conv, then run without it
        dtype = torch.get_autocast_dtype(device)
        return _HaloConv.apply(*(t if t is None else t.to(dtype) for t in (x, weight, bias)), conv, transposed)
