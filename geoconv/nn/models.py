"""Models assembled from op names: a stack of one op, and a classifier.

Both build every layer through :func:`geoconv.build_op` with the model's grid, so a
config that names ``op``, ``grid`` and ``padding_mode`` gives a comparable model for
every registered operator: the unit the probes and the ablations measure.

Examples
--------
>>> import torch
>>> stack = OpStack("conv", 3, channels=8, depth=2, grid="equirect")
>>> stack(torch.randn(1, 3, 8, 16)).shape
torch.Size([1, 8, 8, 16])
>>> Classifier("conv", 3, classes=10)(torch.randn(2, 3, 16, 16)).shape
torch.Size([2, 10])
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from geoconv._checks import check_int
from geoconv.errors import ParameterError
from geoconv.grids import get_grid
from geoconv.nn.blocks import EncoderBlock
from geoconv.nn.norm import make_norm
from geoconv.nn.pooling import GlobalMeanPool
from geoconv.ops.activations import make_activation
from geoconv.ops.registry import get_op

__all__ = ["Classifier", "OpStack", "count_parameters", "op_params"]


def op_params(name: str, params: Mapping[str, Any] | None, padding_mode: str | None = None) -> dict[str, Any]:
    """The parameters for op ``name``: ``params`` with a model-wide ``padding_mode`` applied.

    The rule is :meth:`geoconv.ops.registry.OpSpec.with_padding_mode`: ``None`` keeps the
    op's own setting, a mode overrides it, and a mode for an op without padding
    (``spectral_conv``, ...) is an error.

    >>> op_params("conv", {"kernel_size": 5}, "circular")
    {'kernel_size': 5, 'padding_mode': 'circular'}
    """
    return get_op(name).with_padding_mode(params, padding_mode)


def count_parameters(model: nn.Module) -> int:
    """Learnable parameters of ``model``; lazy ones count once they are materialised.

    >>> count_parameters(torch.nn.Linear(3, 2))
    8
    """
    return sum(p.numel() for p in model.parameters() if not isinstance(p, nn.parameter.UninitializedParameter))


class OpStack(nn.Sequential):
    """``depth`` layers of one op, with an optional norm and activation between them.

    Parameters
    ----------
    op : str
        A registered op name.
    in_channels : int
        Channels of the input.
    channels : int
        Channels of every layer's output (pooling-type ops keep ``in_channels``).
    depth : int
        Number of op layers.
    grid : str
        The grid of the input.
    params : mapping, optional
        The op's parameters (its config fields).
    padding_mode : str, optional
        Overrides the op's padding mode (:meth:`geoconv.ops.registry.OpSpec.with_padding_mode`;
        an error for an op without padding).
    activation : str
        Between layers (``identity`` keeps the stack linear, as the ERF theory wants).
    norm : str
        ``none``, ``batch``, ``group`` or ``instance``, between layers.

    Shapes
    ------
    ``(B, C_in, *spatial) -> (B, channels, *spatial')`` in the grid's layout.
    """

    def __init__(
        self,
        op: str,
        in_channels: int,
        channels: int = 8,
        depth: int = 3,
        grid: str = "planar",
        params: Mapping[str, Any] | None = None,
        padding_mode: str | None = None,
        activation: str = "identity",
        norm: str = "none",
    ) -> None:
        depth = check_int("depth", depth, minimum=1)
        channels = check_int("channels", channels, minimum=1)
        spec = get_op(op)
        get_grid(grid)
        layers: list[nn.Module] = []
        width = in_channels
        for index in range(depth):
            out = width if spec.same_channels else channels
            layers.append(spec.build(width, out, grid=grid, **op_params(op, params, padding_mode)))
            width = out
            if index < depth - 1:
                if norm != "none":
                    layers.append(make_norm(norm, width, grid=grid))
                layers.append(make_activation(activation))
        super().__init__(*layers)
        self.op, self.grid, self.out_channels = op, grid, width


class Classifier(nn.Module):
    """Encoder blocks of one op, area-weighted global mean pooling over the sphere or plane, a linear head.

    Parameters
    ----------
    op : str
        The conv-like op of every block (``conv``, ``gated_conv``, ``cheb_conv``, ...).
    in_channels : int
        Channels of the input.
    classes : int
        Number of classes.
    grid : str
        The grid of the input.
    widths : sequence of int
        Output channels of each block; each block downsamples by ``stride``.
    params : mapping, optional
        The op's parameters.
    padding_mode : str, optional
        Overrides the op's padding mode (:meth:`geoconv.ops.registry.OpSpec.with_padding_mode`;
        an error for an op without padding); reaches the pools too.
    stride : int
        Stride of each block's op (1 keeps the resolution, as ops without stride need).
    pool : str, optional
        A pooling op after each block's op (``avg_pool``, ``max_pool``, ``blur_pool``, ...):
        the hierarchy for ops without a stride. Graph and spectral convs need one before the
        global mean: a graph Laplacian sums to zero, so a last graph layer feeds the mean
        nothing but its input's mean.
    norm, activation : str
        As in :class:`geoconv.nn.EncoderBlock`; a spherical grid's norms weight their
        statistics by pixel area. The default, ``group`` with one group (a layer norm over
        the channels and the sphere), keeps no running statistics, so eval mode computes
        what training mode does (see the notes below).
    norm_groups : int
        Groups for ``norm="group"``; it must divide every width (1 divides all).
    global_pool : {"area", "uniform"}
        :class:`geoconv.nn.pooling.GlobalMeanPool`'s weights: the grid's quadrature (the
        mean over the sphere; the pixel mean on a flat grid) or every pixel alike.

    Shapes
    ------
    ``(B, C_in, *spatial) -> (B, classes)`` logits.

    Notes
    -----
    Why not batch norm by default: a spherical digit lights a small cap (about 70 % of
    the pixels of ``spherical_digits`` are empty), so the pooled features of two digits
    differ little while every pixel shares the norm's offset. Batch norm's running
    statistics, an exponential average over batches taken while the weights move, lag the
    final weights' statistics (on equirect 16, after 4 epochs of Adam at 1e-2: running
    variances 0.54–0.66 of the data's, means off by 0.2–0.7 standard deviations); the
    whole empty sphere moves with that offset, which shifts every sample's pooled features
    by about one between-sample standard deviation in the same direction, and eval-mode
    predictions fall on a few classes (train mode 0.91, eval 0.27; recomputing the
    running statistics at the final weights gives 0.91 again). Group norm has no
    running statistics, so the two modes agree exactly. One group rather than one per
    channel (instance norm): instance norm erases each sample's per-channel mean and
    scale, so a class told by the signal's level cannot be learnt, where one group keeps
    every channel's level relative to the others'; and one group divides any width.
    The price, measured on equirect 12 (1,438 digits, 5 epochs, Adam 1e-2, 3 seeds): batch
    norm reaches 0.93 in train mode, group norm 0.68–0.75; but batch norm's eval-mode
    accuracy swings from epoch to epoch (on equirect 16 with area pooling: 0.31, 0.10,
    0.47, 0.20 against 0.47–0.88 in train mode), and area pooling alone does not cure it.
    """

    def __init__(
        self,
        op: str,
        in_channels: int,
        classes: int,
        grid: str = "planar",
        widths: tuple[int, ...] | list[int] = (16, 32),
        params: Mapping[str, Any] | None = None,
        padding_mode: str | None = None,
        stride: int = 2,
        pool: str | None = None,
        norm: str = "group",
        activation: str = "relu",
        global_pool: str = "area",
        norm_groups: int = 1,
    ) -> None:
        super().__init__()
        classes = check_int("classes", classes, minimum=1)
        if len(widths) == 0:
            raise ParameterError("widths must name at least one block's channels, got an empty sequence")
        blocks = []
        width = in_channels
        spec = get_op(op)
        # The model-wide padding_mode wins over the op's own setting, which is kept otherwise.
        params = spec.with_padding_mode(params, padding_mode)
        fields = {p.name for p in spec.parameters()}
        # The block owns the geometry keys; None leaves an op without them its own default.
        kernel = params.pop("kernel_size", 3 if "kernel_size" in fields else None)
        dilation = params.pop("dilation", 1)
        params.pop("stride", None)  # the blocks' stride decides the resolution
        padding_mode = params.pop("padding_mode", None)  # a block argument: it reaches the pool too
        for out in widths:
            extra = dict(params)
            blocks.append(
                EncoderBlock(
                    width,
                    out,
                    grid=grid,
                    conv=op,
                    conv_params=extra,
                    stride=stride,
                    kernel_size=kernel,
                    dilation=dilation,
                    padding_mode=padding_mode,
                    pool=pool,
                    norm=norm,
                    norm_groups=norm_groups,
                    activation=activation,
                )
            )
            width = out
        self.blocks = nn.Sequential(*blocks)
        self.pool = GlobalMeanPool(grid, global_pool)
        self.head = nn.Linear(width, classes)
        self.grid = grid

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Globally pooled features ``(B, C)``: the quadrature-weighted mean over the grid (all faces)."""
        return self.pool(self.blocks(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
