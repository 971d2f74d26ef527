r"""``max_unpool``: each value back where its maximum came from, zeros elsewhere.

The partial inverse of ``max_pool(return_indices=True)``: the "switch variables" of
deconvolutional networks (Zeiler & Fergus 2014) that DeepPainter uses to undo pooling,

.. math::

    \operatorname{unpool}(y, m)_{p} = \begin{cases} y_q & \text{if } m_q = p \\
                                        0 & \text{if no } q \text{ has } m_q = p, \end{cases}

with :math:`m` the flat positions ``i * W + j`` that ``max_pool`` returns. Keeps the
channel count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from geoconv._checks import check_pair, check_tensor
from geoconv.errors import ParameterError, ShapeError
from geoconv.ops._common import IntOrPair, SameChannelsOp, check_output_faces
from geoconv.ops.pool import MaxPool, MaxPoolConfig, check_pool_geometry
from geoconv.ops.registry import EVERY_GRID, register_op
from geoconv.sizes import Layer

__all__ = ["MaxUnpool", "MaxUnpoolConfig"]


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
        self.kernel_size, self.stride, self.padding = check_pool_geometry(self.kernel_size, self.stride, self.padding)


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

    def layers(self, input_size: tuple[int, int] | None = None, axis: int = -1) -> list[Layer]:
        """Refuse: an unpooling upsamples, which the receptive-field arithmetic of :class:`~geoconv.sizes.Layer` cannot.

        Where each value lands depends on the indices it is given, and one output pixel
        sees a fraction of an input pixel (a stride of ``1 / s``).
        """
        raise ParameterError(
            f"max_unpool upsamples (an output pixel per 1/stride input pixels, stride={self.config.stride}) to "
            "positions its indices choose; the "
            "receptive-field arithmetic of geoconv.sizes.Layer covers layers with integer strides >= 1 only"
        )

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
