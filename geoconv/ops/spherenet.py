r"""``sphere_conv``: SphereNet's distortion-aware convolution on the equirect grid.

Coors, Condurache & Geiger (2018), *SphereNet: Learning Spherical Representations for
Detection and Classification in Omnidirectional Images*, ECCV. A planar ``k x k`` kernel is
laid on the plane tangent to the sphere at each output pixel, and each tap reads the image
where the inverse gnomonic projection of its tangent-plane point lands, so the kernel has
the same angular shape at every latitude instead of being stretched along the parallels
near the poles as a planar conv on the equirect map is.

Geometry
--------
Output pixel :math:`(i', j')` has its centre at the equirect pixel centres of the output grid
``(H', W') = (H / s, W / s)`` (stride :math:`s`): colatitude
:math:`\theta_0 = (i' + \frac12)\pi / H'`, longitude :math:`\lambda_0 = 2\pi j' / W'`. With
:math:`s > 1` the output longitudes are input columns :math:`s j'`; the output rows lie between
input rows (the centres of the coarser grid, not a subset of the finer one). Tap
:math:`(u, v)` of a ``k x k`` kernel (``k`` odd) sits at the tangent-plane point

.. math::

    x = b\,\Delta, \quad y = -a\,\Delta, \qquad a = u - \tfrac{k-1}{2},\; b = v - \tfrac{k-1}{2},
    \qquad \Delta = \mathrm{spacing} \cdot \mathrm{dilation} \cdot \frac{2\pi}{W},

with :math:`x` pointing east and :math:`y` north, so that, as in ``nn.Conv2d``, row index
``u`` grows southwards (with the equirect row) and column index ``v`` eastwards (with the
longitude). The inverse gnomonic projection maps it to the point of the sphere on the ray
from the centre of the sphere through the tangent-plane point :math:`p + x\,e + y\,n` (``p``
the output pixel's unit vector, ``e`` and ``n`` the unit east and north vectors there), i.e.

.. math::

    \cos\theta &= \cos c \cos\theta_0 + \frac{y \sin c \sin\theta_0}{\rho}, \qquad
    \lambda - \lambda_0 = \operatorname{atan2}\big(x,\; \sin\theta_0 - y\cos\theta_0\big),

with :math:`\rho = \sqrt{x^2 + y^2}` and :math:`c = \arctan\rho` the tap's geodesic distance from
the centre. A tap beyond the pole (:math:`y > \tan\theta_0`) lands on the far meridian
:math:`\lambda_0 + \pi`.

Sampling
--------
Bilinear in the equirect image, at the continuous pixel coordinates
:math:`r = \theta H / \pi - \frac12`, :math:`c = (\lambda \bmod 2\pi)\, W / 2\pi`. Columns wrap
around the longitude. Rows across a pole follow the ``sphere`` padding of
:mod:`geoconv.grids.equirect`: the row :math:`-1` above row 0 is row 0 half a turn of longitude
away (colatitude :math:`-\theta \equiv` colatitude :math:`\theta`, longitude :math:`+\pi`), and
row :math:`H` is row :math:`H-1` rolled by ``W/2``; so a point between the pole and the first
row is interpolated along the great circle through the pole.

The geometry depends on the output row only (a rotation about the pole moves a whole row of
kernels together), and the column indices of output column :math:`j'` are those of column 0
shifted by :math:`s j'`: the op commutes exactly with longitude rolls by multiples of ``s``
pixels. The indices and bilinear weights (4 corners per tap per output pixel) are built once
per ``(H, W, k, stride, dilation, spacing, dtype, device)`` in geoconv's shared table cache
(:mod:`geoconv._cache`), with their adjoint grouped by input pixel. A forward is one fused
weighted gather (``embedding_bag``: 4 corners per tap, the taps of each output pixel side by
side) into a ``(B H' W', k^2 C)`` tap matrix and one matmul with the weight; the backward
is the adjoint gather (no scatter) and the matmul's.

Examples
--------
>>> import torch
>>> from geoconv import build_op
>>> conv = build_op("sphere_conv", 2, 4, grid="equirect", kernel_size=3, stride=2)
>>> conv(torch.randn(1, 2, 8, 16)).shape
torch.Size([1, 4, 4, 8])
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.fx.experimental.symbolic_shapes import guard_scalar

from geoconv._cache import cached, register_builder
from geoconv._checks import check_bool, check_float, check_int
from geoconv.errors import ParameterError, ShapeError
from geoconv.grids import get_grid
from geoconv.ops._common import check_axis, check_input_size, check_op_input, check_output_faces, init_conv_parameters
from geoconv.ops.registry import register_op
from geoconv.sizes import Layer

__all__ = ["SamplingTable", "SphereConv", "SphereConvConfig", "sampling_table", "tap_positions"]


@dataclass
class SphereConvConfig:
    """Parameters of ``sphere_conv``.

    Attributes
    ----------
    kernel_size : int
        The side ``k`` of the square kernel, odd (the kernel is centred on the output pixel).
    stride : int
        Output grid ``(H / stride, W / stride)``; ``H`` and ``W`` must be divisible by it and
        ``W / stride`` even.
    dilation : int
        Multiplies the tap spacing on the tangent plane.
    groups : int
        Both channel counts must be divisible by it (as ``nn.Conv2d``'s ``groups``).
    bias : bool
        Add a learned bias per output channel.
    spacing : float
        The tap spacing on the tangent plane in units of one equatorial pixel, ``2 pi / W``
        (``1.0``: at the equator the taps fall on the neighbouring pixels).
    """

    kernel_size: int = 3
    stride: int = 1
    dilation: int = 1
    groups: int = 1
    bias: bool = True
    spacing: float = 1.0

    def __post_init__(self) -> None:
        self.kernel_size = check_int("kernel_size", self.kernel_size, minimum=1)
        if self.kernel_size % 2 == 0:
            raise ParameterError(
                f"kernel_size of sphere_conv must be odd (the kernel is centred on the output pixel's tangent "
                f"point), got kernel_size={self.kernel_size}"
            )
        self.stride = check_int("stride", self.stride, minimum=1)
        self.dilation = check_int("dilation", self.dilation, minimum=1)
        self.groups = check_int("groups", self.groups, minimum=1)
        self.bias = check_bool("bias", self.bias)
        self.spacing = check_float("spacing", self.spacing, positive=True)
        if not math.isfinite(self.spacing):
            raise ParameterError(f"spacing must be a finite number > 0, got {self.spacing}")


def _tap_geometry(
    height: int, width: int, kernel_size: int, stride: int, dilation: int, spacing: float
) -> tuple[np.ndarray, np.ndarray]:
    """Colatitude and longitude offset of every tap for the output pixel of each row at longitude 0.

    Returns two float64 arrays ``(H', k, k)``: :math:`\\theta` in ``[0, pi]`` and
    :math:`\\lambda - \\lambda_0` in ``(-pi, pi]``.
    """
    theta0 = (np.arange(height // stride, dtype=np.float64) + 0.5) * (np.pi / (height // stride))
    sin0, cos0 = np.sin(theta0)[:, None, None], np.cos(theta0)[:, None, None]
    offsets = (np.arange(kernel_size, dtype=np.float64) - (kernel_size - 1) / 2) * (
        spacing * dilation * 2 * np.pi / width
    )
    east = offsets[None, None, :]  # x grows with the kernel column v
    north = -offsets[None, :, None]  # y shrinks with the kernel row u (rows grow southwards)
    # The tangent-plane point p + x e + y n at longitude 0, with p = (sin t, 0, cos t),
    # e = (0, 1, 0), n = (-cos t, 0, sin t); its direction is the tap (central projection).
    qx, qy, qz = np.broadcast_arrays(sin0 - north * cos0, east, cos0 + north * sin0)
    return np.arctan2(np.hypot(qx, qy), qz), np.arctan2(qy, qx)


def tap_positions(
    height: int, width: int, kernel_size: int = 3, stride: int = 1, dilation: int = 1, spacing: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    r"""Colatitude and longitude of every kernel tap of ``sphere_conv``: where each tap samples.

    Parameters
    ----------
    height, width : int
        The input's ``(H, W)``; ``W`` even, both divisible by ``stride``.
    kernel_size, stride, dilation : int
        As in :class:`SphereConvConfig` (``kernel_size`` odd).
    spacing : float
        The tap spacing in equatorial pixels, :math:`2\pi / W`.

    Returns
    -------
    colat, lon : numpy.ndarray
        float64, shape ``(H', W', k, k)``: tap ``(u, v)`` of output pixel ``(i', j')`` lies at
        colatitude ``colat[i', j', u, v]`` in ``[0, pi]`` and longitude ``lon[i', j', u, v]`` in
        ``[0, 2 pi)``.

    Examples
    --------
    >>> colat, lon = tap_positions(4, 8)
    >>> colat.shape
    (4, 8, 3, 3)
    >>> bool(np.isclose(colat[1, 0, 1, 1], 3 * np.pi / 8)), bool(np.isclose(lon[1, 2, 1, 1], np.pi / 2))
    (True, True)
    """
    config = SphereConvConfig(kernel_size=kernel_size, stride=stride, dilation=dilation, spacing=spacing)
    height, width = _check_size(height, width, config.stride)
    colat, dlon = _tap_geometry(height, width, config.kernel_size, config.stride, config.dilation, config.spacing)
    lon0 = np.arange(width // config.stride, dtype=np.float64) * (2 * np.pi * config.stride / width)
    lon = np.mod(lon0[None, :, None, None] + dlon[:, None], 2 * np.pi)
    lon[lon >= 2 * np.pi] = 0.0  # np.mod rounds a tiny negative angle up to 2 pi itself
    return np.broadcast_to(colat[:, None], lon.shape).copy(), lon


def _check_size(height: object, width: object, stride: int) -> tuple[int, int]:
    height = check_int("height", height, minimum=1)
    width = check_int("width", width, minimum=2)
    if width % 2 or height % stride or width % stride or (width // stride) % 2:
        raise ShapeError(
            f"sphere_conv with stride={stride} needs an equirect grid (H, W) with H and W divisible by {stride} "
            f"and W/{stride} even, got (H, W)=({height}, {width})"
        )
    return height, width


@dataclass(frozen=True)
class SamplingTable:
    r"""The bilinear sampling of ``sphere_conv`` for one input size, and its adjoint, as sparse rows.

    The sampling is a sparse matrix :math:`S` of shape ``(k^2 H' W', H W)``: row
    :math:`m = (i' W' + j') k^2 + (u k + v)` (output pixel, then tap) holds the bilinear weights
    of tap :math:`(u, v)` of output pixel :math:`(i', j')` at the flat input pixels
    ``row * W + col`` of its (up to 4) corners. Both :math:`S` and its adjoint :math:`S^\top`
    are stored row by row (CSR: the entries of row ``m`` are ``offsets[m]`` up to the next
    offset), so the forward and the backward pass are both gathers; zero weights are left out.

    Attributes
    ----------
    index, offsets, weight : torch.Tensor
        :math:`S`: input pixels (int64, ``(nnz,)``), row starts (int64, ``(k^2 H' W',)``) and
        weights (``(nnz,)``; each row sums to 1).
    adjoint_index, adjoint_offsets, adjoint_weight : torch.Tensor
        :math:`S^\top`: for each input pixel, the taps ``m`` that read it (``(nnz,)``), row
        starts (``(H W,)``) and weights (``(nnz,)``).
    """

    index: torch.Tensor
    offsets: torch.Tensor
    weight: torch.Tensor
    adjoint_index: torch.Tensor
    adjoint_offsets: torch.Tensor
    adjoint_weight: torch.Tensor


def _csr(rows: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The order that sorts COO entries by ``rows`` (stably) and the start of each of ``size`` rows."""
    order = np.argsort(rows, kind="stable")
    counts = np.bincount(rows, minlength=size)
    return order, np.concatenate([[0], np.cumsum(counts)[:-1]])


@register_builder("sphere_conv_sampling")
def _build_table(
    height: int,
    width: int,
    kernel_size: int,
    stride: int,
    dilation: int,
    spacing: float,
    dtype: str,
    device: torch.device,
) -> SamplingTable:
    colat, dlon = _tap_geometry(height, width, kernel_size, stride, dilation, spacing)  # (H', k, k)
    # The equirect grid's own bilinear interpolation (rows continue across a pole as in its
    # "sphere" padding, taps within 1e-9 pixels of a centre snap to it), for output column 0.
    column0 = get_grid("equirect").interpolation_table((height, width), colat, dlon)  # (H', k, k, 4)
    row, col = np.divmod(column0.index, width)
    # Output column j' reads the columns of column 0 shifted by s j': the same weights for a whole
    # row of output pixels, which is what makes longitude rolls commute exactly.
    shift = np.arange(width // stride)[None, :, None, None, None] * stride  # (1, W', 1, 1, 1)
    pixel = row[:, None] * width + (col[:, None] + shift) % width  # (H', W', k, k, 4)
    weight = np.broadcast_to(column0.weight[:, None], pixel.shape)
    # COO entries (tap m, input pixel, weight), m = (i' W' + j') k^2 + u k + v, 4 corners each.
    pixel, weight = pixel.reshape(-1), weight.reshape(-1)
    keep = np.flatnonzero(weight)  # a snapped tap reads one pixel: no zero-weight corners to gather
    tap, pixel, weight = keep // 4, pixel[keep], weight[keep]
    forward, offsets = _csr(tap, (height // stride) * (width // stride) * kernel_size**2)
    adjoint, adjoint_offsets = _csr(pixel, height * width)
    real = getattr(torch, dtype)

    def tensor(array: np.ndarray, dtype: torch.dtype = torch.int64) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(array)).to(device=device, dtype=dtype)

    return SamplingTable(
        *(tensor(pixel[forward]), tensor(offsets), tensor(weight[forward], real)),
        *(tensor(tap[adjoint]), tensor(adjoint_offsets), tensor(weight[adjoint], real)),
    )


def _bag_sum(
    source: torch.Tensor, index: torch.Tensor, offsets: torch.Tensor, weight: torch.Tensor, rows: int, batch: int
) -> torch.Tensor:
    """The sparse rows ``(index, offsets, weight)`` applied to each of ``batch`` blocks of ``rows`` rows of ``source``.

    ``source`` is ``(batch * rows, C)``; returns ``(batch * len(offsets), C)``, block ``b`` from
    block ``b``. One fused weighted gather (``embedding_bag``): no ``(..., 4)``-fold
    intermediate, no scatter.
    """
    blocks = torch.arange(batch, device=index.device)[:, None]
    ids = (index + blocks * rows).reshape(-1)
    starts = (offsets + blocks * index.numel()).reshape(-1)
    return F.embedding_bag(ids, source, starts, mode="sum", per_sample_weights=weight.expand(batch, -1).reshape(-1))


class _Sample(torch.autograd.Function):
    """``S x`` for a sparse ``S`` given with its adjoint: the backward is ``S^T g``, again a gather.

    Differentiable to any order: the backward applies this function with the roles swapped.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, source: torch.Tensor, *table: torch.Tensor | int
    ) -> torch.Tensor:
        *sparse, batch = table
        ctx.save_for_backward(*sparse)  # type: ignore[arg-type]
        ctx.batch = batch  # type: ignore[attr-defined]
        index, offsets, weight, _, adjoint_offsets, _ = sparse
        return _bag_sum(source, index, offsets, weight, adjoint_offsets.numel(), batch)  # type: ignore[arg-type]

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        index, offsets, weight, *adjoint = ctx.saved_tensors  # type: ignore[attr-defined]
        grad_source = _Sample.apply(grad.contiguous(), *adjoint, index, offsets, weight, ctx.batch)  # type: ignore[attr-defined]
        return (grad_source, *([None] * 7))


def sampling_table(
    height: int,
    width: int,
    kernel_size: int = 3,
    stride: int = 1,
    dilation: int = 1,
    spacing: float = 1.0,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> SamplingTable:
    """The cached :class:`SamplingTable` of ``sphere_conv`` for an input ``(H, W)`` (see the module doc).

    Parameters
    ----------
    height, width : int
        The input's ``(H, W)``; ``W`` even, both divisible by ``stride``, ``W / stride`` even.
    kernel_size, stride, dilation : int
        As in :class:`SphereConvConfig`.
    spacing : float
        The tap spacing in equatorial pixels.
    dtype : torch.dtype
        Of the bilinear weights (a floating-point dtype).
    device : torch.device or str
        Where the table lives.

    Returns
    -------
    SamplingTable
        Built once per argument tuple, then read from :data:`geoconv._cache.TABLES`.

    Examples
    --------
    >>> table = sampling_table(4, 8, kernel_size=3)
    >>> table.offsets.shape, table.adjoint_offsets.shape   # 9 taps * 32 output pixels, 32 input pixels
    (torch.Size([288]), torch.Size([32]))
    >>> start, stop = table.offsets[4], table.offsets[5]   # tap 4: the centre of output pixel 0
    >>> table.index[start:stop], table.weight[start:stop]   # reads input pixel 0 alone
    (tensor([0]), tensor([1.]))
    """
    config = SphereConvConfig(kernel_size=kernel_size, stride=stride, dilation=dilation, spacing=spacing)
    height, width = _check_size(height, width, config.stride)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ParameterError(f"dtype of a sphere_conv sampling table must be a floating-point torch.dtype, got {dtype}")
    return cached(  # type: ignore[return-value]
        "sphere_conv_sampling",
        torch.device(device),
        height,
        width,
        config.kernel_size,
        config.stride,
        config.dilation,
        config.spacing,
        str(dtype).removeprefix("torch."),
    )


@register_op("sphere_conv", grids=("equirect",), config=SphereConvConfig)
class SphereConv(nn.Module):
    r"""SphereNet convolution (Coors et al. 2018): kernels on each pixel's tangent plane, sampled bilinearly.

    Each output pixel's ``k x k`` taps lie on its tangent plane :math:`\Delta` apart (one
    equatorial pixel :math:`2\pi/W` times ``spacing`` and ``dilation``), mapped onto the sphere
    by the inverse gnomonic projection and read bilinearly from the equirect map, across the
    longitude seam and the poles; see :mod:`geoconv.ops.spherenet` for the formulas. Then

    .. math::

        y_o(i', j') = b_o + \sum_{c,u,v} w_{o,c,u,v}\; x_c\big(\theta_{i'uv},\, \lambda_{j'} + \delta_{i'uv}\big),

    with the weight laid out like ``nn.Conv2d``'s: row ``u`` southwards, column ``v`` eastwards.
    Next to the equator (with ``W = 2H``) the taps fall within about :math:`\Delta^2` pixels of
    the neighbouring pixels (0.01 pixel at ``H = 32``), and the op agrees with a circularly
    padded ``nn.Conv2d`` with the same weights up to that interpolation error; a planar
    ``nn.Conv2d``'s ``state_dict`` loads as is.
    Towards the poles the taps spread over ever more columns (by :math:`1/\sin\theta`), keeping
    their angular layout.

    Parameters
    ----------
    in_channels, out_channels : int
        Channel counts; both divisible by ``groups``.
    grid : str
        ``"equirect"`` (the only grid: the taps are placed by its pixel geometry).
    config : SphereConvConfig
        Kernel size (odd), stride, dilation, groups, bias, tap spacing.

    Attributes
    ----------
    weight : torch.nn.Parameter
        Shape ``(C_out, C_in / groups, k, k)``, initialised as ``nn.Conv2d``'s.
    bias : torch.nn.Parameter or None
        Shape ``(C_out,)``.

    Shapes
    ------
    ``(B, C_in, H, W) -> (B, C_out, H / s, W / s)``; ``H`` and ``W`` divisible by the stride
    ``s``, ``W / s`` even. Output pixel ``(i', j')`` is centred at colatitude
    :math:`(i' + \frac12)\pi s / H` and longitude :math:`2\pi j' s / W`.

    Examples
    --------
    >>> import torch
    >>> from geoconv import build_op
    >>> conv = build_op("sphere_conv", 3, 8, grid="equirect", kernel_size=3)
    >>> conv(torch.randn(2, 3, 8, 16)).shape
    torch.Size([2, 8, 8, 16])
    >>> conv.load_state_dict(torch.nn.Conv2d(3, 8, 3).state_dict())   # planar weights load
    <All keys matched successfully>
    """

    def __init__(
        self, in_channels: int, out_channels: int, grid: str = "equirect", config: SphereConvConfig | None = None
    ) -> None:
        super().__init__()
        self.grid = get_grid(grid)
        if self.grid.name != "equirect":
            raise ParameterError(
                f"sphere_conv runs on grid 'equirect' only (its taps are placed by the equirect pixel geometry), "
                f"got grid={self.grid.name!r}"
            )
        config = config or SphereConvConfig()
        self.config = config
        self.in_channels = check_int("in_channels", in_channels, minimum=1)
        self.out_channels = check_int("out_channels", out_channels, minimum=1)
        for name, channels in (("in_channels", in_channels), ("out_channels", out_channels)):
            if channels % config.groups:
                raise ParameterError(f"{name}={channels} must be divisible by groups={config.groups}")
        k = config.kernel_size
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels // config.groups, k, k))
        self.bias = nn.Parameter(torch.empty(out_channels)) if config.bias else None
        init_conv_parameters(self.weight, self.bias)

    def _check(self, x: object) -> torch.Tensor:
        x = check_op_input("sphere_conv", self.grid, x, self.in_channels, floating=True, like=self.weight)
        height, width = x.shape[-2:]
        s = self.config.stride
        if height % s or width % s:
            raise ShapeError(
                f"sphere_conv with stride={s} needs H and W divisible by {s} (the output is the equirect grid of "
                f"H/{s} x W/{s}), got x of shape {tuple(x.shape)} (H={height}, W={width})"
            )
        check_output_faces("sphere_conv", self.grid, x, (height // s, width // s), stride=s)
        return x

    def _table(self, x: torch.Tensor) -> SamplingTable:
        c = self.config
        # The sizes and the config are checked already: straight to the cache, one lookup (which
        # torch.compile traces; guard_scalar specialises a dynamic-shape graph to the size, as the
        # table differs per size). Under autocast the weight's dtype may differ from x's: the taps
        # are interpolated in x's.
        dtype = str(x.dtype).removeprefix("torch.")
        numbers = (x.shape[-2], x.shape[-1], c.kernel_size, c.stride, c.dilation, c.spacing)
        args = (*(guard_scalar(n) for n in numbers), dtype)  # spacing too: dynamo may trace floats symbolically
        return cached("sphere_conv_sampling", x.device, *args)  # type: ignore[return-value]

    def taps(self, x: torch.Tensor) -> torch.Tensor:
        """The sampled taps of every output pixel, ``(B, C_in, k, k, H', W')``.

        The tensor the weight multiplies: ``forward(x)`` equals
        ``einsum("ocuv,bcuvhw->bohw", weight, taps(x)) + bias`` (for ``groups=1``).
        """
        x = self._check(x)
        batch, channels = x.shape[:2]
        k = self.config.kernel_size
        out_h, out_w = self.output_size(tuple(x.shape[-2:]))
        taps = self._sample(x).view(batch, out_h, out_w, k, k, channels)
        return taps.permute(0, 5, 3, 4, 1, 2)

    def _sample(self, x: torch.Tensor) -> torch.Tensor:
        """``(B H' W' k^2, C)``: the taps, output pixel by output pixel, then tap by tap."""
        batch, channels, height, width = x.shape
        table = self._table(x)
        # Pixels as rows of channels: a tap's 4 corners are 4 rows, and the k^2 taps of one output
        # pixel come out side by side, (k^2 C) values in a row: the layout the matmul reads.
        source = x.permute(0, 2, 3, 1).reshape(batch * height * width, channels)
        return _Sample.apply(
            source,
            *(table.index, table.offsets, table.weight),
            *(table.adjoint_index, table.adjoint_offsets, table.adjoint_weight),
            batch,
        )

    def output_size(self, input_size: tuple[int, int]) -> tuple[int, int]:
        """``(H / stride, W / stride)``."""
        height, width = check_input_size(input_size)  # type: ignore[misc]
        return height // self.config.stride, width // self.config.stride

    def layers(self, input_size: tuple[int, int] | None = None, axis: int = -1) -> list[Layer]:
        """Refuse: the kernel's footprint in equirect columns grows towards the poles.

        A tap ``b`` columns east of the centre lies about :math:`b / \\sin\\theta` columns
        away at colatitude :math:`\\theta`, and beyond a pole on the far meridian; no one
        planar kernel size describes it.
        """
        check_axis(axis)
        check_input_size(input_size)
        raise ParameterError(
            "sphere_conv places its taps on each pixel's tangent plane, so their spread in equirect columns grows "
            "like 1/sin(colatitude) towards the poles; no one planar kernel (geoconv.sizes.Layer) describes it"
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._check(x)
        batch, channels = x.shape[:2]
        k, groups, out = self.config.kernel_size, self.config.groups, self.out_channels
        out_h, out_w = self.output_size(tuple(x.shape[-2:]))
        pixels = batch * out_h * out_w
        taps = self._sample(x)  # (B H' W' k^2, C)
        if groups == 1:
            # One matmul: (B H' W', k^2 C) @ (k^2 C, C_out), the weight's taps ordered like the rows'.
            kernel = self.weight.permute(0, 2, 3, 1).reshape(out, k * k * channels)
            y = F.linear(taps.view(pixels, k * k * channels), kernel, self.bias)
        else:
            per_group = channels // groups
            kernel = self.weight.view(groups, out // groups, per_group, k * k)
            y = torch.einsum("nkgc,gock->ngo", taps.view(pixels, k * k, groups, per_group), kernel)
            y = y.reshape(pixels, out)
            if self.bias is not None:
                y = y + self.bias
        return y.view(batch, out_h, out_w, out).permute(0, 3, 1, 2).contiguous()

    def extra_repr(self) -> str:
        c = self.config
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={c.kernel_size}, stride={c.stride}, "
            f"dilation={c.dilation}, groups={c.groups}, bias={c.bias}, spacing={c.spacing}, grid='equirect'"
        )
