r"""Pooling: ``max_pool``, ``avg_pool`` and ``max_unpool``.

Pooling keeps the channel count: ``out_channels`` must equal ``in_channels`` or be left
out. Each op is written once against the grid interface, like :mod:`geoconv.ops.conv`.

Padding
-------
``padding_mode=None`` (the default) on the plane is torch's own convention: ``max_pool``
pads with :math:`-\infty` (a padded pixel is never the maximum) and ``avg_pool`` pads with
zeros, counted or not in the divisor (``count_include_pad``). Any other mode
(``reflect``, ``replicate``, ``circular``, ``zeros``, ``constant``, or a grid's own
mode) pads the input with ``grid.pad`` first and then pools without padding, so the
padded pixels are data like any other; on a spherical grid ``None`` means the grid's
own padding. In every mode the output size is torch's
(:func:`geoconv.sizes.pool_output_size`).

Switch variables
----------------
``max_pool(return_indices=True)`` also returns, for every output pixel, the flat position
``i * W + j`` in its input plane of the pixel the maximum came from (torch's
convention). ``max_unpool`` writes each value back to that position and zeros
elsewhere, the "switch variables" of deconvolutional networks (Zeiler & Fergus 2014)
that DeepPainter uses to undo pooling:

.. math::

    \operatorname{unpool}(y, m)_{p} = \begin{cases} y_q & \text{if } m_q = p \\
                                        0 & \text{if no } q \text{ has } m_q = p. \end{cases}
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from geoconv._checks import check_bool, check_float, check_int, check_pair, check_tensor
from geoconv.errors import GeoconvError, ParameterError, ShapeError
from geoconv.grids import Grid
from geoconv.ops._common import GridOp, IntOrPair, check_output_faces
from geoconv.ops.registry import EVERY_GRID, register_op
from geoconv.sizes import pool_output_size

__all__ = [
    "AvgPool",
    "AvgPoolConfig",
    "MaxPool",
    "MaxPoolConfig",
    "MaxUnpool",
    "MaxUnpoolConfig",
]


def _check_pool_geometry(
    kernel_size: object, stride: object, padding: object
) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    """Validate kernel, stride (``None`` = kernel) and padding as pairs, with torch's padding limit."""
    kernel = check_pair("kernel_size", kernel_size, minimum=1)
    strides = kernel if stride is None else check_pair("stride", stride, minimum=1)
    pads = check_pair("padding", padding, minimum=0)
    # torch's own limit (it raises a bare RuntimeError beyond it), checked here up front.
    if pads[0] > kernel[0] // 2 or pads[1] > kernel[1] // 2:
        raise ParameterError(
            f"padding must be at most half the kernel_size along each axis (at most "
            f"{(kernel[0] // 2, kernel[1] // 2)} for kernel_size={kernel}), got padding={pads}"
        )
    return kernel, strides, pads


class SameChannelsOp(GridOp):
    """Base class of the pooling-type ops: the channel count goes through unchanged.

    Parameters
    ----------
    op_name : str
        The registry name, for messages.
    in_channels : int
        Channels of the input.
    out_channels : int, optional
        Must equal ``in_channels`` if given.
    grid : str or Grid
        The grid the input lives on.
    padding_mode : str, optional
        See :class:`~geoconv.ops._common.GridOp`.
    planar_default : str, optional
        The mode ``None`` stands for on the plane.
    """

    def __init__(
        self,
        op_name: str,
        in_channels: int,
        out_channels: int | None,
        grid: str | Grid,
        padding_mode: str | None = None,
        planar_default: str | None = None,
        value: float = 0.0,
    ) -> None:
        super().__init__(grid, padding_mode, planar_default, value)  # type: ignore[arg-type]
        in_channels = check_int("in_channels", in_channels, minimum=1)
        out_channels = in_channels if out_channels is None else check_int("out_channels", out_channels, minimum=1)
        if out_channels != in_channels:
            raise ParameterError(
                f"op {op_name!r} keeps the channel count: out_channels must equal in_channels "
                f"({in_channels}) or be left out, got out_channels={out_channels}"
            )
        self.op_name = op_name
        self.in_channels = self.out_channels = in_channels

    def check_input(self, x: object, name: str = "x", floating: bool = False) -> torch.Tensor:
        """Check layout, channel count and (optionally) a floating-point dtype of an input."""
        x = self.grid.check(x, name)
        if x.shape[1] != self.in_channels:
            raise ShapeError(
                f"{self.op_name}: {name} must have in_channels={self.in_channels} channels in dim 1 "
                f"{self.grid.layout}, got shape {tuple(x.shape)}"
            )
        if floating and not x.is_floating_point():
            raise ShapeError(f"{self.op_name}: {name} must have a floating-point dtype, got {x.dtype}")
        return x


def _pooled_shape(
    op: str,
    x: torch.Tensor,
    spatial: tuple[int, int],
    kernel: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int],
    dilation: tuple[int, int],
    ceil_mode: bool,
) -> tuple[int, int]:
    """torch's pooled size per axis, or a ShapeError naming the input shape when the window does not fit."""
    try:
        return (
            pool_output_size(spatial[0], kernel[0], stride[0], padding[0], dilation[0], ceil_mode),
            pool_output_size(spatial[1], kernel[1], stride[1], padding[1], dilation[1], ceil_mode),
        )
    except GeoconvError as exc:
        raise ShapeError(
            f"{op}: the pooling window (kernel_size={kernel}, dilation={dilation}) does not fit x of shape "
            f"{tuple(x.shape)} padded by {padding}: {exc}"
        ) from None


@functools.lru_cache(maxsize=256)
def _padding_only_window(size: int, kernel: int, stride: int, padding: int, dilation: int, count: int) -> int | None:
    """The first of ``count`` windows along an axis whose dilated taps all fall in the padding, if any.

    torch's limit ``padding <= kernel_size // 2`` rules this out without dilation, but
    not with it; such a window pools nothing but -inf and torch returns an index outside
    the input plane.
    """
    for index in range(count):
        start = index * stride - padding
        if not any(0 <= start + tap * dilation < size for tap in range(kernel)):
            return index
    return None


def _pad_widths(padding: tuple[int, int]) -> tuple[int, int, int, int]:
    return (padding[0], padding[0], padding[1], padding[1])


@dataclass
class MaxPoolConfig:
    """Parameters of ``max_pool``.

    Attributes
    ----------
    kernel_size : int or (int, int)
        The window.
    stride : int or (int, int), optional
        ``None`` means the kernel size (non-overlapping windows).
    padding : int or (int, int)
        Pixels added on each side, at most half the kernel size (torch's limit).
    dilation : int or (int, int)
        Spacing of the window's taps.
    ceil_mode : bool
        Round the output size up (a last window starting in the right padding is dropped).
    return_indices : bool
        Also return the flat position in each input plane of every maximum, for ``max_unpool``.
    padding_mode : str, optional
        ``None``: torch's implicit :math:`-\\infty` padding on the plane, the grid's own
        padding elsewhere; or any mode of the grid. With ``zeros``/``constant`` a maximum
        may come from the padding, which has no input position, so ``return_indices``
        needs another mode there.
    value : float
        Fill value for ``padding_mode="constant"``.
    """

    kernel_size: IntOrPair = 2
    stride: IntOrPair | None = None
    padding: IntOrPair = 0
    dilation: IntOrPair = 1
    ceil_mode: bool = False
    return_indices: bool = False
    padding_mode: str | None = None
    value: float = 0.0

    def __post_init__(self) -> None:
        self.kernel_size, self.stride, self.padding = _check_pool_geometry(self.kernel_size, self.stride, self.padding)
        self.dilation = check_pair("dilation", self.dilation, minimum=1)
        self.ceil_mode = check_bool("ceil_mode", self.ceil_mode)
        self.return_indices = check_bool("return_indices", self.return_indices)
        self.value = check_float("value", self.value)
        if self.return_indices and self.padding_mode in ("zeros", "constant") and self.padding != (0, 0):
            raise ParameterError(
                f"return_indices=True with padding_mode={self.padding_mode!r} and padding={self.padding}: a "
                "maximum taken from the padding has no position in the input; use padding_mode=None (torch's "
                "-inf padding), 'reflect', 'replicate' or 'circular'"
            )


class _WindowPool(SameChannelsOp):
    """What ``max_pool`` and ``avg_pool`` share: the config, the output size, torch's own padding.

    With ``padding_mode=None`` on the plane, torch pads inside the kernel for free (with
    :math:`-\\infty` for max, zeros for the mean) and its max-pool indices are already
    positions in the input plane; any other mode pads with the grid first.
    """

    op_name: ClassVar[str]
    config_type: ClassVar[type]

    def __init__(
        self,
        in_channels: int,
        out_channels: int | None = None,
        grid: str = "planar",
        config: Any = None,
    ) -> None:
        config = config or self.config_type()
        super().__init__(self.op_name, in_channels, out_channels, grid, config.padding_mode, value=config.value)
        self.config = config
        self.implicit_padding = config.padding_mode is None and self.grid.name == "planar"

    def output_shape(self, x: torch.Tensor) -> tuple[int, int]:
        """Spatial output size for the input ``x`` (raises ``ShapeError`` if the window does not fit)."""
        cfg = self.config
        dilation = getattr(cfg, "dilation", (1, 1))
        spatial = self.grid.spatial_shape(x)
        out = _pooled_shape(self.op_name, x, spatial, cfg.kernel_size, cfg.stride, cfg.padding, dilation, cfg.ceil_mode)
        check_output_faces(
            self.op_name,
            self.grid,
            x,
            out,
            kernel_size=cfg.kernel_size,
            stride=cfg.stride,
            padding=cfg.padding,
            ceil_mode=cfg.ceil_mode,
        )
        return out


@register_op("max_pool", grids=EVERY_GRID, config=MaxPoolConfig, same_channels=True)
class MaxPool(_WindowPool):
    """Max pooling; optionally returns the positions of the maxima (the "switch variables").

    Keeps the channel count: ``out_channels`` must equal ``in_channels`` or be left out.

    Parameters
    ----------
    in_channels : int
        Channels of the input.
    out_channels : int, optional
        Equal to ``in_channels`` if given.
    grid : str
        The grid the input lives on.
    config : MaxPoolConfig
        Kernel, stride, padding, dilation, ceil mode, indices, padding mode.

    Shapes
    ------
    ``(B, C, H, W) -> (B, C, H', W')`` with ``H'`` from :func:`geoconv.sizes.pool_output_size`
    (``floor((H + 2p - d(k - 1) - 1) / s) + 1`` without ``ceil_mode``). With
    ``return_indices`` the result is ``(values, indices)``, ``indices`` int64 of the same
    shape, holding flat positions ``i * W + j`` in each input plane.

    Examples
    --------
    >>> import torch
    >>> from geoconv import build_op
    >>> pool = build_op("max_pool", 1, kernel_size=2, return_indices=True)
    >>> x = torch.tensor([[[[1.0, 5.0], [3.0, 2.0]]]])
    >>> values, indices = pool(x)
    >>> values.flatten().tolist(), indices.flatten().tolist()
    ([5.0], [1])
    """

    op_name = "max_pool"
    config_type = MaxPoolConfig

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        x = self.check_input(x)
        if x.dtype == torch.bool or x.is_complex():
            # Maxima need an order: torch has no max_pool2d for these.
            raise ShapeError(
                f"max_pool: x must have a real (floating-point or integer) dtype, got {x.dtype}; "
                f"convert it, e.g. x.to(torch.float32)"
            )
        out_h, out_w = self.output_shape(x)
        cfg = self.config
        batch = x.shape[0]
        if self.implicit_padding:
            self._check_windows(x, (out_h, out_w))
            result = F.max_pool2d(
                self.grid.to_planes(x),
                cfg.kernel_size,
                cfg.stride,
                cfg.padding,
                cfg.dilation,
                cfg.ceil_mode,
                return_indices=cfg.return_indices,
            )
            if not cfg.return_indices:
                return self.grid.from_planes(result, batch=batch)
            values, indices = result
            return self.grid.from_planes(values, batch=batch), self.grid.from_planes(indices, batch=batch)

        widths = _pad_widths(cfg.padding)
        planes = self.grid.pad_to_planes(x, widths, self.padding_mode, cfg.value)
        result = F.max_pool2d(
            planes, cfg.kernel_size, cfg.stride, 0, cfg.dilation, cfg.ceil_mode, return_indices=cfg.return_indices
        )
        # With the padding made explicit, ceil_mode may keep a last window that starts in
        # the right padding; torch's rule (and the size promised above) drops it.
        if not cfg.return_indices:
            return self.grid.from_planes(result[..., :out_h, :out_w], batch=batch)
        values, padded_indices = (t[..., :out_h, :out_w] for t in result)
        indices = self._source_indices(x, widths, padded_indices)
        return self.grid.from_planes(values, batch=batch), indices

    def _check_windows(self, x: torch.Tensor, out_shape: tuple[int, int]) -> None:
        cfg = self.config
        spatial = self.grid.spatial_shape(x)
        for axis, name in enumerate(("row", "column")):
            if cfg.dilation[axis] == 1 or cfg.padding[axis] == 0:
                continue
            args = (cfg.kernel_size[axis], cfg.stride[axis], cfg.padding[axis], cfg.dilation[axis])
            bad = _padding_only_window(spatial[axis], *args, out_shape[axis])
            if bad is not None:
                raise ShapeError(
                    f"max_pool: output {name} {bad} would pool padding only: with kernel_size={cfg.kernel_size}, "
                    f"dilation={cfg.dilation} and padding={cfg.padding} its taps miss x of shape "
                    f"{tuple(x.shape)}; reduce padding or dilation, or use a padding_mode"
                )

    def _source_indices(
        self, x: torch.Tensor, widths: tuple[int, int, int, int], padded_indices: torch.Tensor
    ) -> torch.Tensor:
        """Map positions in the padded planes back to flat positions in the unpadded input.

        Padding the map of input positions with the same mode tells, for every padded
        pixel, which input pixel it copies: one gather, valid for every gather-type
        padding (reflect, replicate, circular and the spherical modes). float64 holds
        positions exactly up to 2**53.
        """
        spatial = tuple(x.shape[2:])
        count = math.prod(spatial)
        positions = torch.arange(count, dtype=torch.float64, device=x.device).reshape(1, 1, *spatial)
        positions = positions.expand(x.shape[0], 1, *spatial)
        padded = self.grid.to_planes(self.grid.pad(positions, widths, self.padding_mode, -1.0))
        flat = padded.flatten(-2).expand(-1, padded_indices.shape[1], -1)
        mapped = flat.gather(-1, padded_indices.flatten(-2)).reshape(padded_indices.shape)
        if bool(((mapped < 0) | (mapped != mapped.round())).any()):
            raise ParameterError(
                f"max_pool: return_indices needs padding that copies input pixels; padding_mode="
                f"{self.padding_mode!r} on grid {self.grid.name!r} does not"
            )
        return self.grid.from_planes(mapped.long(), batch=x.shape[0])

    def extra_repr(self) -> str:
        cfg = self.config
        mode = "None (-inf)" if self.implicit_padding else repr(self.padding_mode)
        return (
            f"{self.in_channels}, kernel_size={cfg.kernel_size}, stride={cfg.stride}, padding={cfg.padding}, "
            f"dilation={cfg.dilation}, ceil_mode={cfg.ceil_mode}, return_indices={cfg.return_indices}, "
            f"grid={self.grid.name!r}, padding_mode={mode}"
        )


@dataclass
class AvgPoolConfig:
    """Parameters of ``avg_pool``.

    Attributes
    ----------
    kernel_size : int or (int, int)
        The window.
    stride : int or (int, int), optional
        ``None`` means the kernel size.
    padding : int or (int, int)
        Pixels added on each side, at most half the kernel size.
    ceil_mode : bool
        Round the output size up.
    count_include_pad : bool
        With torch's implicit zero padding (``padding_mode=None`` on the plane), count the
        padded zeros in the divisor. Must stay True with any other padding mode, whose
        padded pixels are data.
    padding_mode : str, optional
        ``None``: torch's implicit zero padding on the plane, the grid's own padding
        elsewhere; or any mode of the grid.
    value : float
        Fill value for ``padding_mode="constant"``.
    """

    kernel_size: IntOrPair = 2
    stride: IntOrPair | None = None
    padding: IntOrPair = 0
    ceil_mode: bool = False
    count_include_pad: bool = True
    padding_mode: str | None = None
    value: float = 0.0

    def __post_init__(self) -> None:
        self.kernel_size, self.stride, self.padding = _check_pool_geometry(self.kernel_size, self.stride, self.padding)
        self.ceil_mode = check_bool("ceil_mode", self.ceil_mode)
        self.count_include_pad = check_bool("count_include_pad", self.count_include_pad)
        self.value = check_float("value", self.value)
        if not self.count_include_pad and self.padding_mode is not None:
            raise ParameterError(
                f"count_include_pad=False applies to torch's implicit zero padding (padding_mode=None); with "
                f"padding_mode={self.padding_mode!r} the padded pixels are data and always count"
            )


@register_op("avg_pool", grids=EVERY_GRID, config=AvgPoolConfig, same_channels=True)
class AvgPool(_WindowPool):
    r"""Average pooling: the mean over each window.

    Keeps the channel count: ``out_channels`` must equal ``in_channels`` or be left out.

    .. math::

        y(i, j) = \frac{1}{|W_{ij}|} \sum_{(u, v) \in W_{ij}} \tilde x(u, v)

    where :math:`|W_{ij}|` counts the window's pixels inside the padded input (or only
    those inside the input, with ``count_include_pad=False``).

    Parameters
    ----------
    in_channels : int
        Channels of the input.
    out_channels : int, optional
        Equal to ``in_channels`` if given.
    grid : str
        The grid the input lives on.
    config : AvgPoolConfig
        Kernel, stride, padding, ceil mode, divisor rule, padding mode.

    Shapes
    ------
    ``(B, C, H, W) -> (B, C, H', W')`` with ``H'`` from :func:`geoconv.sizes.pool_output_size`.

    Examples
    --------
    >>> import torch
    >>> from geoconv import build_op
    >>> pool = build_op("avg_pool", 1, kernel_size=2)
    >>> pool(torch.arange(16.0).view(1, 1, 4, 4)).flatten().tolist()
    [2.5, 4.5, 10.5, 12.5]
    """

    op_name = "avg_pool"
    config_type = AvgPoolConfig

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.check_input(x, floating=True)
        out_h, out_w = self.output_shape(x)
        cfg = self.config
        if self.implicit_padding:
            y = F.avg_pool2d(
                self.grid.to_planes(x), cfg.kernel_size, cfg.stride, cfg.padding, cfg.ceil_mode, cfg.count_include_pad
            )
        else:
            planes = self.grid.pad_to_planes(x, _pad_widths(cfg.padding), self.padding_mode, cfg.value)
            y = F.avg_pool2d(planes, cfg.kernel_size, cfg.stride, 0, cfg.ceil_mode, True)
            y = y[..., :out_h, :out_w]
        return self.grid.from_planes(y, batch=x.shape[0])

    def extra_repr(self) -> str:
        cfg = self.config
        mode = "None (zeros)" if self.implicit_padding else repr(self.padding_mode)
        return (
            f"{self.in_channels}, kernel_size={cfg.kernel_size}, stride={cfg.stride}, padding={cfg.padding}, "
            f"ceil_mode={cfg.ceil_mode}, count_include_pad={cfg.count_include_pad}, grid={self.grid.name!r}, "
            f"padding_mode={mode}"
        )


@dataclass
class MaxUnpoolConfig:
    """Parameters of ``max_unpool``: those of the ``max_pool`` it undoes.

    Attributes
    ----------
    kernel_size : int or (int, int)
        The pool's window.
    stride : int or (int, int), optional
        The pool's stride; ``None`` means the kernel size.
    padding : int or (int, int)
        The pool's padding.
    """

    kernel_size: IntOrPair = 2
    stride: IntOrPair | None = None
    padding: IntOrPair = 0

    def __post_init__(self) -> None:
        self.kernel_size, self.stride, self.padding = _check_pool_geometry(self.kernel_size, self.stride, self.padding)


def _read_output_size(output_size: object) -> tuple[int, int]:
    """``(H', W')`` from an int, a pair, or a full shape ending in ``H', W'`` (as torch allows)."""
    if isinstance(output_size, torch.Size | tuple | list) and len(output_size) > 2:
        output_size = tuple(output_size)[-2:]
    return check_pair("output_size", output_size, minimum=1)


def _unpool_apply(module: MaxUnpool, x: torch.Tensor) -> torch.Tensor:
    """Drive ``max_unpool`` with one tensor: pool it with a matching ``max_pool``, then unpool."""
    cfg = module.config
    pool = MaxPool(
        module.in_channels,
        grid=module.grid.name,
        config=MaxPoolConfig(kernel_size=cfg.kernel_size, stride=cfg.stride, padding=cfg.padding, return_indices=True),
    )
    values, indices = pool(x)
    return module(values, indices, output_size=module.grid.spatial_shape(x))


@register_op("max_unpool", grids=EVERY_GRID, config=MaxUnpoolConfig, same_channels=True, apply=_unpool_apply)
class MaxUnpool(SameChannelsOp):
    """Max unpooling: each value goes back to where its maximum came from, zeros elsewhere.

    The partial inverse of ``max_pool(return_indices=True)`` (DeepPainter's "switch
    variables"). Keeps the channel count: ``out_channels`` must equal ``in_channels`` or
    be left out. The registry's ``apply`` drives it with one tensor by pooling it first.

    Parameters
    ----------
    in_channels : int
        Channels of the input.
    out_channels : int, optional
        Equal to ``in_channels`` if given.
    grid : str
        The grid the input lives on.
    config : MaxUnpoolConfig
        The kernel, stride and padding of the pool it undoes.

    Shapes
    ------
    ``forward(x, indices, output_size=None)``: ``x`` and ``indices`` ``(B, C, h, w)``
    (``indices`` integer, flat positions ``i * W + j`` in the output plane) ->
    ``(B, C, H, W)`` with ``H = (h - 1) s - 2p + k`` by default, or ``output_size``
    (``(H, W)`` or a full shape), which must lie strictly within ``stride`` of that default.
    Where windows overlapped, a position picked twice receives the same value twice.

    Examples
    --------
    >>> import torch
    >>> from geoconv import build_op
    >>> pool = build_op("max_pool", 1, return_indices=True)
    >>> unpool = build_op("max_unpool", 1)
    >>> x = torch.tensor([[[[1.0, 5.0], [3.0, 2.0]]]])
    >>> unpool(*pool(x)).flatten().tolist()
    [0.0, 5.0, 0.0, 0.0]
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int | None = None,
        grid: str = "planar",
        config: MaxUnpoolConfig | None = None,
    ) -> None:
        config = config or MaxUnpoolConfig()
        super().__init__("max_unpool", in_channels, out_channels, grid)
        self.config = config

    def output_shape(self, x: torch.Tensor, output_size: Any = None) -> tuple[int, int]:
        """The spatial output size for pooled input ``x`` and an optional requested size."""
        cfg = self.config
        spatial = self.grid.spatial_shape(x)
        default = tuple((spatial[a] - 1) * cfg.stride[a] - 2 * cfg.padding[a] + cfg.kernel_size[a] for a in range(2))
        if output_size is None:
            if min(default) < 1:
                raise ShapeError(
                    f"max_unpool: x of shape {tuple(x.shape)} unpools to an empty {default} with "
                    f"kernel_size={cfg.kernel_size}, stride={cfg.stride}, padding={cfg.padding}; pass output_size"
                )
            check_output_faces(
                "max_unpool", self.grid, x, default, kernel_size=cfg.kernel_size, stride=cfg.stride, padding=cfg.padding
            )
            return default  # type: ignore[return-value]
        size = _read_output_size(output_size)
        for axis in range(2):
            low, high = default[axis] - cfg.stride[axis], default[axis] + cfg.stride[axis]
            if not low < size[axis] < high:
                raise ShapeError(
                    f"max_unpool: output_size[{axis}]={size[axis]} is not a size that max_pool maps to "
                    f"{spatial[axis]} with kernel_size={cfg.kernel_size}, stride={cfg.stride}, "
                    f"padding={cfg.padding}; expected a value in [{low + 1}, {high - 1}]"
                )
        check_output_faces("max_unpool", self.grid, x, size, output_size=output_size)
        return size

    def forward(self, x: torch.Tensor, indices: torch.Tensor, output_size: Any = None) -> torch.Tensor:
        x = self.check_input(x)
        indices = check_tensor(indices, ndim=x.dim(), name="indices", layout=self.grid.layout)
        if indices.shape != x.shape:
            raise ShapeError(
                f"max_unpool: indices must have the shape of x {tuple(x.shape)}, got {tuple(indices.shape)}"
            )
        if indices.is_floating_point() or indices.is_complex() or indices.dtype == torch.bool:
            raise ShapeError(
                f"max_unpool: indices must be an integer tensor (from max_pool with return_indices=True), "
                f"got dtype {indices.dtype}"
            )
        if indices.device != x.device:
            raise ShapeError(f"max_unpool: indices are on {indices.device} but x is on {x.device}")
        out_h, out_w = self.output_shape(x, output_size)
        face_shape = tuple(x.shape[2:-2])
        count = math.prod(face_shape) * out_h * out_w
        # One reduction up front: scatter would otherwise fail deep in torch (a device-side
        # assert on CUDA) for indices that do not belong to this output size.
        if indices.numel():
            low, high = int(indices.min()), int(indices.max())
            if low < 0 or high >= count:
                raise ShapeError(
                    f"max_unpool: indices must be flat positions in [0, {count}) of an output of spatial size "
                    f"{(*face_shape, out_h, out_w)}, got values in [{low}, {high}]"
                )
        batch, channels = x.shape[:2]
        plane = math.prod(x.shape[2:])  # not -1: an empty batch (B = 0) has no size to infer
        # scatter, not F.max_unpool2d: the same code serves every grid's layout; positions
        # picked by two overlapping windows carry the same value, so write order is moot.
        flat = x.new_zeros(batch, channels, count).scatter(
            2, indices.reshape(batch, channels, plane).long(), x.reshape(batch, channels, plane)
        )
        return flat.reshape(batch, channels, *face_shape, out_h, out_w)

    def extra_repr(self) -> str:
        cfg = self.config
        return (
            f"{self.in_channels}, kernel_size={cfg.kernel_size}, stride={cfg.stride}, padding={cfg.padding}, "
            f"grid={self.grid.name!r}"
        )
