r"""Pooling: ``max_pool`` and ``avg_pool`` (``max_unpool`` is in :mod:`geoconv.ops.unpool`).

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
convention). ``max_unpool`` (:mod:`geoconv.ops.unpool`) writes each value back to that position and zeros
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

from geoconv._checks import check_bool, check_float, check_pair
from geoconv.errors import GeoconvError, ParameterError, ShapeError
from geoconv.ops._common import IntOrPair, SameChannelsOp, check_axis, check_input_size
from geoconv.ops.registry import EVERY_GRID, register_op
from geoconv.sizes import Layer, pool_output_size

__all__ = [
    "AvgPool",
    "AvgPoolConfig",
    "MaxPool",
    "MaxPoolConfig",
    "SameChannelsOp",
    "check_pool_geometry",
]


def check_pool_geometry(
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
        self.kernel_size, self.stride, self.padding = check_pool_geometry(self.kernel_size, self.stride, self.padding)
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
        self.implicit_padding = config.padding_mode is None and self.torch_pads_itself

    def output_size(self, input_size: tuple[int, int]) -> tuple[int, int]:
        """torch's pooled face size for faces of ``input_size`` ``(H, W)`` (:func:`geoconv.sizes.pool_output_size`)."""
        cfg = self.config
        size = check_pair("input_size", input_size, minimum=1)
        dilation = getattr(cfg, "dilation", (1, 1))
        return (
            pool_output_size(size[0], cfg.kernel_size[0], cfg.stride[0], cfg.padding[0], dilation[0], cfg.ceil_mode),
            pool_output_size(size[1], cfg.kernel_size[1], cfg.stride[1], cfg.padding[1], dilation[1], cfg.ceil_mode),
        )

    def output_shape(self, x: torch.Tensor) -> tuple[int, int]:
        """Spatial output size for the input ``x`` (raises ``ShapeError`` if the window does not fit)."""
        cfg = self.config
        dilation = getattr(cfg, "dilation", (1, 1))
        spatial = self.grid.spatial_shape(x)
        return _pooled_shape(
            self.op_name, x, spatial, cfg.kernel_size, cfg.stride, cfg.padding, dilation, cfg.ceil_mode
        )

    def layers(self, input_size: tuple[int, int] | None = None, axis: int = -1) -> list[Layer]:
        """One layer: the window, stride, dilation and padding along ``axis``; ``input_size`` is not needed.

        Whatever the padding mode, the window reads ``padding`` pixels beyond the input on each side.

        >>> from geoconv import build_op
        >>> build_op("max_pool", 1, kernel_size=3, stride=2, padding=1).layers()
        [Layer(kernel_size=3, stride=2, padding=1, dilation=1)]
        """
        axis, cfg = check_axis(axis), self.config
        check_input_size(input_size)
        a = axis + 2
        dilation = getattr(cfg, "dilation", (1, 1))
        return [Layer(cfg.kernel_size[a], cfg.stride[a], cfg.padding[a], dilation[a])]

    def _settings(self) -> dict[str, object]:
        cfg = self.config
        return {
            "kernel_size": cfg.kernel_size,
            "stride": cfg.stride,
            "padding": cfg.padding,
            "ceil_mode": cfg.ceil_mode,
        }


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
        widths = _pad_widths(cfg.padding)

        def kernel(planes: torch.Tensor, padding: tuple[int, int]) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
            if self.implicit_padding:
                self._check_windows(x, (out_h, out_w))
            result = F.max_pool2d(
                planes,
                cfg.kernel_size,
                cfg.stride,
                padding,
                cfg.dilation,
                cfg.ceil_mode,
                return_indices=cfg.return_indices,
            )
            if self.implicit_padding or not cfg.return_indices:
                # torch's own padding: its indices are already positions in the input plane.
                return result
            # With the padding made explicit, ceil_mode may keep a last window that starts in
            # the right padding; torch's rule (and the size promised above) drops it.
            values, padded_indices = (t[..., :out_h, :out_w] for t in result)
            return values, self._source_indices(x, widths, padded_indices)

        return self.run_planar(
            x,
            kernel,
            widths,
            (out_h, out_w),
            implicit=self.implicit_padding,
            value=cfg.value,
            settings=self._settings(),
        )

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
        positions exactly up to 2**53. Returns planes, like ``padded_indices``.
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
        return mapped.long()

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
        self.kernel_size, self.stride, self.padding = check_pool_geometry(self.kernel_size, self.stride, self.padding)
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
        out = self.output_shape(x)
        cfg = self.config
        # With any padding mode but torch's own the padded pixels are data: they always count.
        count_include_pad = cfg.count_include_pad if self.implicit_padding else True

        def kernel(planes: torch.Tensor, padding: tuple[int, int]) -> torch.Tensor:
            return F.avg_pool2d(planes, cfg.kernel_size, cfg.stride, padding, cfg.ceil_mode, count_include_pad)

        widths = _pad_widths(cfg.padding)
        return self.run_planar(
            x, kernel, widths, out, implicit=self.implicit_padding, value=cfg.value, settings=self._settings()
        )

    def extra_repr(self) -> str:
        cfg = self.config
        mode = "None (zeros)" if self.implicit_padding else repr(self.padding_mode)
        return (
            f"{self.in_channels}, kernel_size={cfg.kernel_size}, stride={cfg.stride}, padding={cfg.padding}, "
            f"ceil_mode={cfg.ceil_mode}, count_include_pad={cfg.count_include_pad}, grid={self.grid.name!r}, "
            f"padding_mode={mode}"
        )
