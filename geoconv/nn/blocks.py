"""Convolutional blocks assembled from registered op names, for any grid.

The blocks are the ones the seed text describes:

- :class:`EncoderBlock`: conv (usually stride 2), then normalisation or pooling, then
  an activation;
- :class:`DecoderBlock`: an upsampling (bilinear ``upsample`` or a transposed conv)
  first, then the skip connection, conv, normalisation and activation;
- :class:`ClassicBlock`: the "more traditional" conv, act, conv, act, max/avg pool;
- :class:`Head`: a final conv with an optional sigmoid.

Every layer is built by name through :func:`geoconv.build_op`, with the block's
``grid``, so one config key swaps the operator (``conv="gated_conv"``) or the grid
(``grid="healpix"``) and nothing else changes. Tensors are ``(B, C, *spatial)`` in the
grid's layout: ``(B, C, H, W)`` on the plane, ``(B, C, 6, F, F)`` on the cube map,
``(B, C, 12, n, n)`` on HEALPix.

A block argument that an op's config does not have is left out when it asks for
nothing (``stride=1``, ``dilation=1``, ``padding_mode=None``), so ops without those
parameters still fit in a block; any other value reaches the registry, which names
the parameter the op does not take (``padding_mode`` follows the model-wide rule of
:meth:`geoconv.ops.registry.OpSpec.with_padding_mode`). Extra op parameters go in ``conv_params`` (and
``pool_params``, ``upsample_params``), e.g. ``conv_params={"bias": False}`` before a
batch norm, or ``{"activation": "elu"}`` for ``gated_conv``.

Examples
--------
>>> import torch
>>> enc = EncoderBlock(3, 8)
>>> dec = DecoderBlock(8, 4, upsample="conv_transpose", skip_channels=3)
>>> x = torch.randn(2, 3, 32, 32)
>>> dec(enc(x), skip=x).shape
torch.Size([2, 4, 32, 32])
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from geoconv._checks import check_int, check_pair
from geoconv.errors import ParameterError, ShapeError, unknown_name
from geoconv.nn.norm import make_norm
from geoconv.ops.activations import make_activation
from geoconv.ops.registry import build_op, get_op, list_ops

__all__ = ["ClassicBlock", "DecoderBlock", "EncoderBlock", "Head"]

IntOrPair = int | tuple[int, int]

# Values that ask an op for nothing, so an op without the parameter can still be used.
# (padding_mode follows the model-wide rule, geoconv.ops.registry.OpSpec.with_padding_mode.)
_NEUTRAL: dict[str, Any] = {"stride": (1, 1), "dilation": (1, 1)}


def _check_op(argument: str, name: object) -> str:
    ops = list_ops()
    if not isinstance(name, str) or name not in ops:
        raise unknown_name(f"{argument} op", name, ops)
    return name


def _check_params(argument: str, params: Mapping[str, Any] | None, reserved: Sequence[str] = ()) -> dict[str, Any]:
    if params is None:
        return {}
    if not isinstance(params, Mapping):
        raise ParameterError(
            f"{argument} must be a mapping of op parameters or None, got {params!r} ({type(params).__name__})"
        )
    params = dict(params)
    for key in params:
        if not isinstance(key, str):
            raise ParameterError(f"{argument} keys must be parameter names (str), got {key!r}")
        if key in reserved:
            raise ParameterError(
                f"{argument} sets {key!r}, which is a block argument of its own; pass {key}= to the block instead"
            )
    return params


def _is_neutral(key: str, value: Any) -> bool:
    return key in _NEUTRAL and check_pair(key, value) == _NEUTRAL[key]


def _build(
    op: str, in_channels: int, out_channels: int, grid: str, block_params: dict[str, Any], extra: dict[str, Any]
) -> nn.Module:
    spec = get_op(op)
    fields = {p.name for p in spec.parameters()}
    geometry = dict(block_params)
    padding_mode = geometry.pop("padding_mode", None)
    # None asks for the op's own default (kernel_size), so it is left out.
    params = {k: v for k, v in geometry.items() if v is not None and (k in fields or not _is_neutral(k, v))}
    params = spec.with_padding_mode({**params, **extra}, padding_mode)
    return build_op(op, in_channels, out_channels, grid=grid, **params)


def _build_pool(
    pool: str | None, channels: int, grid: str, padding_mode: str | None, pool_params: dict[str, Any]
) -> nn.Module:
    if pool is None:
        return nn.Identity()
    # One padding_mode for the whole block: a circular-padding ablation must reach the blur too.
    return _build(pool, channels, channels, grid, {"padding_mode": padding_mode}, pool_params)


def _check_channels(**channels: int) -> list[int]:
    return [check_int(name, value, minimum=1) for name, value in channels.items()]


def _check_geometry(kernel_size: IntOrPair | None, dilation: IntOrPair) -> None:
    if kernel_size is not None:
        check_pair("kernel_size", kernel_size, minimum=1)
    check_pair("dilation", dilation, minimum=1)


class EncoderBlock(nn.Module):
    """Conv (usually stride 2), then normalisation or pooling, then an activation.

    Without ``pool`` the conv downsamples (``stride=2`` by default): conv → norm → act.
    With ``pool`` the conv runs at stride 1 (by default) and the pool downsamples:
    conv → norm → pool → act (set ``norm="none"`` for the seed's "pooling instead of
    normalisation"). With the default "same" padding the output is ``ceil(H / 2)``.

    Parameters
    ----------
    in_channels, out_channels : int
        Channel counts, >= 1.
    grid : str
        ``planar``, ``equirect``, ``cubemap`` or ``healpix``; every op must support it.
    conv : str
        The registered conv op (``conv``, ``gated_conv``, ...).
    conv_params : mapping, optional
        Extra parameters of the conv op (not ``kernel_size``, ``stride``, ``dilation``
        or ``padding_mode``, which are arguments here).
    stride : int or (int, int), optional
        The conv's stride; ``None`` means 2 without ``pool`` and 1 with it.
    kernel_size, dilation : int or (int, int)
        The conv's kernel size and dilation.
    padding_mode : str, optional
        The padding mode of the conv and of the pool (if it pads); ``None`` leaves each
        op its own default (the grid's padding; ``zeros`` for a planar conv).
    norm : str
        ``batch``, ``group``, ``instance`` or ``none`` (see :func:`geoconv.nn.make_norm`).
    norm_groups : int
        Groups for ``norm="group"``.
    pool : str, optional
        A registered pooling op (``max_pool``, ``avg_pool``, ``blur_pool``, ``aps_pool``).
    pool_params : mapping, optional
        Parameters of the pool op (not ``padding_mode``, which is an argument here).
    activation : str
        A name in :data:`geoconv.ops.activations.ACTIVATIONS`.

    Attributes
    ----------
    conv, norm, pool, act : torch.nn.Module
        The layers in order; ``pool`` is ``nn.Identity`` without ``pool``.

    Shapes
    ------
    ``(B, C_in, *spatial) -> (B, C_out, *spatial')`` in the grid's layout, each face
    ``(H, W) -> (ceil(H / 2), ceil(W / 2))`` with the defaults.

    Examples
    --------
    >>> import torch
    >>> block = EncoderBlock(3, 16, norm="group", norm_groups=4, activation="leaky_relu")
    >>> block(torch.randn(2, 3, 15, 20)).shape
    torch.Size([2, 16, 8, 10])
    >>> [name for name, _ in block.named_children()]
    ['conv', 'norm', 'pool', 'act']
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        grid: str = "planar",
        conv: str = "conv",
        conv_params: Mapping[str, Any] | None = None,
        stride: IntOrPair | None = None,
        kernel_size: IntOrPair = 3,
        dilation: IntOrPair = 1,
        padding_mode: str | None = None,
        norm: str = "batch",
        norm_groups: int = 8,
        pool: str | None = None,
        pool_params: Mapping[str, Any] | None = None,
        activation: str = "relu",
    ) -> None:
        super().__init__()
        in_channels, out_channels = _check_channels(in_channels=in_channels, out_channels=out_channels)
        conv = _check_op("conv", conv)
        pool = None if pool is None else _check_op("pool", pool)
        if stride is None:
            stride = 2 if pool is None else 1
        check_pair("stride", stride, minimum=1)
        _check_geometry(kernel_size, dilation)
        conv_params = _check_params("conv_params", conv_params, ("kernel_size", "stride", "dilation", "padding_mode"))
        pool_params = _check_params("pool_params", pool_params, ("padding_mode",))
        if pool is None and pool_params:
            raise ParameterError(f"pool_params={pool_params!r} given without a pool; set pool= to a pooling op")
        geometry = {"kernel_size": kernel_size, "stride": stride, "dilation": dilation, "padding_mode": padding_mode}
        self.conv = _build(conv, in_channels, out_channels, grid, geometry, conv_params)
        self.norm = make_norm(norm, out_channels, norm_groups, grid=grid)
        self.pool = _build_pool(pool, out_channels, grid, padding_mode, pool_params)
        self.act = make_activation(activation)
        self.in_channels, self.out_channels, self.grid = in_channels, out_channels, grid

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.pool(self.norm(self.conv(x))))


class DecoderBlock(nn.Module):
    """Upsample (bilinear or transposed conv) first, then [skip concat,] conv, norm, activation.

    A pooling-type upsampling op (``upsample``) keeps ``in_channels``; any other
    (``conv_transpose``) maps ``in_channels`` to ``out_channels``. The skip tensor,
    if the block has one, is concatenated after the upsampled input along the channels.

    An op whose ``forward`` takes ``output_size`` (``conv_transpose``) is aimed at the
    skip's face size, so a U-Net round trip restores odd sizes too; ``upsample`` scales
    by its factor, and a skip of another size raises a ``ShapeError`` naming both shapes.

    Parameters
    ----------
    in_channels, out_channels : int
        Channel counts, >= 1.
    grid : str
        ``planar``, ``equirect``, ``cubemap`` or ``healpix``; every op must support it.
    upsample : str
        The registered upsampling op: ``upsample`` (bilinear, ``scale_factor=2``) or
        ``conv_transpose`` (stride 2).
    upsample_params : mapping, optional
        Parameters of the upsampling op (``{"mode": "nearest"}``, ``{"kernel_size": 2}``).
    skip_channels : int
        Channels of the skip tensor ``forward`` expects; 0 for a block without a skip.
    conv, conv_params, kernel_size, dilation, padding_mode, norm, norm_groups, activation
        As in :class:`EncoderBlock`; the conv has stride 1.

    Attributes
    ----------
    up, conv, norm, act : torch.nn.Module
        The layers in order.

    Shapes
    ------
    ``x``: ``(B, C_in, *spatial)``, each face ``(H, W)``; ``skip``:
    ``(B, C_skip, *spatial')`` with the upsampled face size (``2H, 2W`` by default);
    output: ``(B, C_out, *spatial')``.

    Examples
    --------
    >>> import torch
    >>> block = DecoderBlock(8, 4, upsample="conv_transpose", skip_channels=2)
    >>> x, skip = torch.randn(1, 8, 5, 5), torch.randn(1, 2, 9, 9)
    >>> block(x, skip).shape   # the skip's odd size is reached through output_size
    torch.Size([1, 4, 9, 9])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        grid: str = "planar",
        upsample: str = "upsample",
        upsample_params: Mapping[str, Any] | None = None,
        skip_channels: int = 0,
        conv: str = "conv",
        conv_params: Mapping[str, Any] | None = None,
        kernel_size: IntOrPair = 3,
        dilation: IntOrPair = 1,
        padding_mode: str | None = None,
        norm: str = "batch",
        norm_groups: int = 8,
        activation: str = "relu",
    ) -> None:
        super().__init__()
        in_channels, out_channels = _check_channels(in_channels=in_channels, out_channels=out_channels)
        skip_channels = check_int("skip_channels", skip_channels, minimum=0)
        upsample = _check_op("upsample", upsample)
        conv = _check_op("conv", conv)
        _check_geometry(kernel_size, dilation)
        upsample_params = _check_params("upsample_params", upsample_params)
        conv_params = _check_params("conv_params", conv_params, ("kernel_size", "stride", "dilation", "padding_mode"))
        up_channels = in_channels if get_op(upsample).same_channels else out_channels
        self.up = build_op(upsample, in_channels, up_channels, grid=grid, **upsample_params)
        geometry = {"kernel_size": kernel_size, "stride": 1, "dilation": dilation, "padding_mode": padding_mode}
        self.conv = _build(conv, up_channels + skip_channels, out_channels, grid, geometry, conv_params)
        self.norm = make_norm(norm, out_channels, norm_groups, grid=grid)
        self.act = make_activation(activation)
        self.in_channels, self.out_channels, self.skip_channels, self.grid = (
            in_channels,
            out_channels,
            skip_channels,
            grid,
        )
        # Ops that can aim at a size (conv_transpose's output_size) reach odd skip sizes.
        self._up_takes_output_size = "output_size" in inspect.signature(self.up.forward).parameters

    def _upsample(self, x: torch.Tensor, target: tuple[int, ...] | None) -> torch.Tensor:
        if target is not None and self._up_takes_output_size:
            return self.up(x, output_size=target)
        return self.up(x)

    def forward(
        self, x: torch.Tensor, skip: torch.Tensor | None = None, output_size: Sequence[int] | None = None
    ) -> torch.Tensor:
        """Upsample ``x``, concatenate ``skip``, then conv, norm and activation.

        Parameters
        ----------
        x : torch.Tensor
            ``(B, C_in, *spatial)``.
        skip : torch.Tensor, optional
            ``(B, C_skip, *spatial')``; required exactly when ``skip_channels > 0``. Its
            face size is the upsampling target when the op can aim at a size.
        output_size : (int, int), optional
            The face size ``(H', W')`` to upsample to, when there is no skip.

        Raises
        ------
        ShapeError
            For a missing or unexpected skip, a skip with the wrong channels or batch,
            or a skip whose spatial shape differs from the upsampled ``x``.
        """
        if skip is None and self.skip_channels:
            raise ShapeError(f"this DecoderBlock has skip_channels={self.skip_channels}; pass skip=")
        if skip is not None and not self.skip_channels:
            raise ShapeError("this DecoderBlock was built with skip_channels=0 and takes no skip tensor")
        if skip is not None and not isinstance(skip, torch.Tensor):
            raise ShapeError(f"skip must be a torch.Tensor, got {type(skip).__name__}")
        if skip is not None and (not isinstance(x, torch.Tensor) or skip.dim() != x.dim()):
            raise ShapeError(
                f"skip must have the layout of x, (B, C_skip, *spatial), got skip of shape {tuple(skip.shape)} "
                f"for x of shape {tuple(getattr(x, 'shape', ()))}"
            )
        if skip is not None and output_size is not None:
            raise ParameterError("pass either skip (its size is the target) or output_size, not both")
        target = tuple(skip.shape[-2:]) if skip is not None else output_size
        if target is not None:
            target = check_pair("output_size", target, minimum=1)
        try:
            up = self._upsample(x, target)
        except ShapeError as err:
            if skip is None:
                raise
            raise ShapeError(
                f"upsampling x {tuple(x.shape)} with {type(self.up).__name__} to the spatial shape of skip "
                f"{tuple(skip.shape)} failed: {err}"
            ) from err
        if skip is not None:
            if skip.dim() != up.dim() or skip.shape[0] != up.shape[0] or skip.shape[1] != self.skip_channels:
                raise ShapeError(
                    f"skip must have shape (B={up.shape[0]}, C_skip={self.skip_channels}, *spatial) like the "
                    f"upsampled x {tuple(up.shape)}, got {tuple(skip.shape)}"
                )
            if skip.shape[2:] != up.shape[2:]:
                raise ShapeError(
                    f"skip's spatial shape {tuple(skip.shape[2:])} differs from the upsampled x's "
                    f"{tuple(up.shape[2:])} (x {tuple(x.shape)} upsampled by {type(self.up).__name__} "
                    f"to {tuple(up.shape)}; skip {tuple(skip.shape)})"
                )
            up = torch.cat([up, skip], dim=1)
        elif target is not None and tuple(up.shape[-2:]) != target:
            raise ShapeError(
                f"output_size={target} is not reachable: {type(self.up).__name__} upsampled x "
                f"{tuple(x.shape)} to {tuple(up.shape)}"
            )
        return self.act(self.norm(self.conv(up)))


class ClassicBlock(nn.Module):
    """The "more traditional" block: conv, act, conv, act, then max or avg pooling.

    Optional normalisation after each conv (``norm="batch"`` gives the VGG-BN block).

    Parameters
    ----------
    in_channels, out_channels : int
        Channel counts, >= 1; the first conv maps ``in`` to ``out``, the second ``out``
        to ``out``.
    grid : str
        ``planar``, ``equirect``, ``cubemap`` or ``healpix``; every op must support it.
    conv, conv_params, kernel_size, dilation, padding_mode, activation, norm_groups
        As in :class:`EncoderBlock`; both convs have stride 1.
    norm : str
        Normalisation after each conv; ``none`` (the default) as in the seed.
    pool : str, optional
        A registered pooling op, ``max_pool`` (the default) or ``avg_pool``; ``None``
        for no pooling.
    pool_params : mapping, optional
        Parameters of the pool op (``max_pool`` halves with ``kernel_size=2``), not
        ``padding_mode``, which is an argument here and reaches the pool as well.

    Attributes
    ----------
    conv1, norm1, act1, conv2, norm2, act2, pool : torch.nn.Module
        The layers in order.

    Shapes
    ------
    ``(B, C_in, *spatial) -> (B, C_out, *spatial')``, each face ``(H, W) -> (H // 2, W // 2)``
    with ``max_pool``'s defaults.

    Examples
    --------
    >>> import torch
    >>> block = ClassicBlock(3, 8, pool=None)
    >>> block(torch.randn(2, 3, 10, 10)).shape
    torch.Size([2, 8, 10, 10])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        grid: str = "planar",
        conv: str = "conv",
        conv_params: Mapping[str, Any] | None = None,
        kernel_size: IntOrPair = 3,
        dilation: IntOrPair = 1,
        padding_mode: str | None = None,
        norm: str = "none",
        norm_groups: int = 8,
        activation: str = "relu",
        pool: str | None = "max_pool",
        pool_params: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        in_channels, out_channels = _check_channels(in_channels=in_channels, out_channels=out_channels)
        conv = _check_op("conv", conv)
        pool = None if pool is None else _check_op("pool", pool)
        _check_geometry(kernel_size, dilation)
        conv_params = _check_params("conv_params", conv_params, ("kernel_size", "stride", "dilation", "padding_mode"))
        pool_params = _check_params("pool_params", pool_params, ("padding_mode",))
        if pool is None and pool_params:
            raise ParameterError(f"pool_params={pool_params!r} given without a pool; set pool= to a pooling op")
        geometry = {"kernel_size": kernel_size, "stride": 1, "dilation": dilation, "padding_mode": padding_mode}
        self.conv1 = _build(conv, in_channels, out_channels, grid, geometry, conv_params)
        self.norm1 = make_norm(norm, out_channels, norm_groups, grid=grid)
        self.act1 = make_activation(activation)
        self.conv2 = _build(conv, out_channels, out_channels, grid, geometry, conv_params)
        self.norm2 = make_norm(norm, out_channels, norm_groups, grid=grid)
        self.act2 = make_activation(activation)
        self.pool = _build_pool(pool, out_channels, grid, padding_mode, pool_params)
        self.in_channels, self.out_channels, self.grid = in_channels, out_channels, grid

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act1(self.norm1(self.conv1(x)))
        x = self.act2(self.norm2(self.conv2(x)))
        return self.pool(x)


class Head(nn.Module):
    """The last layer: a conv (1×1 by default) with an optional sigmoid.

    Parameters
    ----------
    in_channels, out_channels : int
        Channel counts, >= 1.
    grid : str
        ``planar``, ``equirect``, ``cubemap`` or ``healpix``; the op must support it.
    kernel_size : int or (int, int)
        The conv's kernel size.
    sigmoid : bool
        Squash the output into (0, 1) (masks, probabilities).
    conv, conv_params, padding_mode
        As in :class:`EncoderBlock`; the conv has stride 1.

    Attributes
    ----------
    conv, act : torch.nn.Module
        The conv and ``nn.Sigmoid`` (or ``nn.Identity``).

    Shapes
    ------
    ``(B, C_in, *spatial) -> (B, C_out, *spatial)``.

    Examples
    --------
    >>> import torch
    >>> head = Head(16, 1, sigmoid=True)
    >>> y = head(torch.randn(2, 16, 8, 8))
    >>> y.shape, bool(((y > 0) & (y < 1)).all())
    (torch.Size([2, 1, 8, 8]), True)
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        grid: str = "planar",
        kernel_size: IntOrPair = 1,
        sigmoid: bool = False,
        conv: str = "conv",
        conv_params: Mapping[str, Any] | None = None,
        padding_mode: str | None = None,
    ) -> None:
        super().__init__()
        in_channels, out_channels = _check_channels(in_channels=in_channels, out_channels=out_channels)
        conv = _check_op("conv", conv)
        check_pair("kernel_size", kernel_size, minimum=1)
        if not isinstance(sigmoid, bool):
            raise ParameterError(f"sigmoid must be a bool, got {sigmoid!r} ({type(sigmoid).__name__})")
        conv_params = _check_params("conv_params", conv_params, ("kernel_size", "stride", "padding_mode"))
        geometry = {"kernel_size": kernel_size, "stride": 1, "padding_mode": padding_mode}
        self.conv = _build(conv, in_channels, out_channels, grid, geometry, conv_params)
        self.act = nn.Sigmoid() if sigmoid else nn.Identity()
        self.in_channels, self.out_channels, self.grid = in_channels, out_channels, grid

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv(x))
