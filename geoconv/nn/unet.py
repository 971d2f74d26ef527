r"""An encoder–decoder (U-Net) built from one op name, on any grid.

The network is the seed's recipe, scale by scale:

- **encoder**: one :class:`~geoconv.nn.EncoderBlock` per entry of ``widths``. The first
  keeps the resolution; each of the others halves it, either with a stride-2 conv
  (``down="stride"``) or with a stride-1 conv followed by a pooling op
  (``down="max_pool"``, ``"avg_pool"`` or ``"blur_pool"``);
- **decoder**: one :class:`~geoconv.nn.DecoderBlock` per halving, which upsamples first
  (bilinear ``upsample`` or a stride-2 ``conv_transpose``), concatenates the encoder
  output of the same scale (the skip connection), then applies conv, norm and activation;
- **head**: a 1×1 ``conv`` to ``out_channels`` with an optional sigmoid
  (:class:`~geoconv.nn.Head`).

With ``widths = (w_0, ..., w_D)`` the depth is :math:`D` (the number of halvings) and the
data flow is

.. math::

    e_0 = E_0(x), \quad e_l = E_l(e_{l-1}) \; (l = 1..D), \quad
    d_D = e_D, \quad d_{l-1} = D_l(d_l, e_{l-1}), \quad y = \mathrm{head}(d_0),

where :math:`e_l` has :math:`w_l` channels and faces of :math:`\lceil H / 2^l \rceil` rows.

Every layer is built by registry name with the model's ``grid``, so the same config
gives a planar U-Net, a spherical one with proper padding on equirect, cube-map or
HEALPix faces, or a graph U-Net (``cheb_conv``) on HEALPix.

Examples
--------
>>> import torch
>>> net = UNet("conv", 3, 1, widths=(8, 16), up="conv_transpose")
>>> net(torch.randn(2, 3, 15, 20)).shape
torch.Size([2, 1, 15, 20])
>>> net = UNet("cheb_conv", 1, 2, grid="healpix", widths=(4, 8), down="avg_pool")
>>> net(torch.randn(1, 1, 12, 8, 8)).shape
torch.Size([1, 2, 12, 8, 8])
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from geoconv._checks import check_int, check_pair
from geoconv.errors import ParameterError, ShapeError, unknown_name
from geoconv.grids import get_grid
from geoconv.nn.blocks import DecoderBlock, EncoderBlock, Head
from geoconv.ops import SO3_FAMILY
from geoconv.ops.registry import get_op, list_ops

__all__ = ["DOWN_MODES", "UP_MODES", "UNet", "unet_ops"]

DOWN_MODES: tuple[str, ...] = ("stride", "max_pool", "avg_pool", "blur_pool")
"""How the encoder halves the resolution: a stride-2 conv, or a stride-1 conv and a pooling op."""

UP_MODES: tuple[str, ...] = ("upsample", "conv_transpose")
"""How the decoder doubles it: bilinear interpolation or a learned stride-2 transposed conv."""

# Floor rounding would lose the last row of an odd face, which no upsampling gets back;
# ceil_mode makes every down mode map a face side n to ceil(n / 2), like a "same" stride-2 conv.
_POOL_PARAMS: dict[str, dict[str, Any]] = {
    "max_pool": {"kernel_size": 2, "ceil_mode": True},
    "avg_pool": {"kernel_size": 2, "ceil_mode": True},
    "blur_pool": {"stride": 2},
}


def unet_ops(grid: str | None = None) -> list[str]:
    """The registered ops a :class:`UNet` can be built from (on ``grid``, if given).

    Those that map ``in_channels`` to ``out_channels`` at the input's resolution: not the
    pooling-type ops, which keep the channel count, nor ``conv_transpose``, which upsamples,
    nor the SO(3) family (:data:`geoconv.ops.SO3_FAMILY`), whose output leaves the grid.

    >>> {"conv", "gated_conv", "cheb_conv"} <= set(unet_ops())
    True
    >>> "max_pool" in unet_ops() or "conv_transpose" in unet_ops()
    False
    """
    return [
        name
        for name in list_ops(grid=grid)
        if not get_op(name).same_channels and name != "conv_transpose" and name not in SO3_FAMILY
    ]


def _check_widths(widths: object) -> tuple[int, ...]:
    if isinstance(widths, str | bytes) or not isinstance(widths, Sequence):
        raise ParameterError(f"widths must be a sequence of channel counts, one per scale, got {widths!r}")
    if len(widths) == 0:
        raise ParameterError("widths must name at least one scale's channels, got an empty sequence")
    return tuple(check_int(f"widths[{i}]", w, minimum=1) for i, w in enumerate(widths))


def _split_params(
    op: str, params: Mapping[str, Any] | None, padding_mode: str | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split the op's parameters into block geometry and the rest (passed through to the op)."""
    if params is None:
        params = {}
    if not isinstance(params, Mapping):
        raise ParameterError(f"params must be a mapping of {op!r} parameters or None, got {params!r}")
    spec = get_op(op)
    # A model-wide padding_mode overrides the op's own (OpSpec.with_padding_mode, the one rule).
    params = spec.with_padding_mode(params, padding_mode)
    fields = {p.name: p.default for p in spec.parameters()}
    stride = params.pop("stride", None)
    if stride is not None and check_pair("params['stride']", stride, minimum=1) != (1, 1):
        raise ParameterError(
            f"params['stride']={stride!r}: a UNet sets its convs' strides itself; choose how it "
            f"downsamples with down= (one of {', '.join(map(repr, DOWN_MODES))})"
        )
    # A "valid" conv would shrink every face and break the skip connections' shapes.
    if "padding" in params and params["padding"] != "same":
        raise ParameterError(f"params['padding'] must be 'same' in a UNet, got {params['padding']!r}")
    kernel = params.pop("kernel_size", None)
    geometry = {
        "kernel_size": kernel,
        "dilation": params.pop("dilation", 1),
        "padding_mode": params.pop("padding_mode", None),
        # The transposed conv mirrors the op's kernel, where the op has one.
        "up_kernel": kernel if kernel is not None else fields.get("kernel_size"),
    }
    return geometry, params


class UNet(nn.Module):
    r"""Encoder–decoder with skip connections at every scale, from one op name, on any grid.

    Parameters
    ----------
    op : str
        The conv-like op of every encoder and decoder block (:func:`unet_ops`): ``conv``,
        ``gated_conv``, ``cheb_conv``, ``neighbour_conv``, ``spectral_conv``, ...
    in_channels : int
        Channels of the input.
    out_channels : int
        Channels of the output (1 for a binary mask's logits).
    grid : str
        ``planar``, ``equirect``, ``cubemap`` or ``healpix``; ``op`` must support it.
    widths : sequence of int
        Channels at each scale, full resolution first; ``len(widths) - 1`` is the depth,
        the number of halvings.
    params : mapping, optional
        The op's parameters (its config fields, as ``op.params`` in a config).
        ``kernel_size`` and ``dilation`` set every block's conv (and ``kernel_size`` the
        transposed conv's); the rest (``bias``, ``K``, gated_conv's ``activation``, ...)
        reach the op unchanged. ``stride`` must be 1 and ``padding`` ``"same"``: the
        network owns the resolution.
    padding_mode : str, optional
        Overrides the op's padding mode (the convs', the transposed conv's and the
        pools'); ``None`` keeps ``params['padding_mode']``, else the grid's own (``zeros``
        for a planar conv). An error for an op without padding
        (:meth:`geoconv.ops.registry.OpSpec.with_padding_mode`).
    down : str
        ``stride`` (a stride-2 conv; ops without a stride cannot), ``max_pool`` or
        ``avg_pool`` (2×2 windows, ceil mode), or ``blur_pool`` (anti-aliased, stride 2).
    up : str
        ``upsample`` (bilinear ×2, the grid's padding continues faces across borders;
        face sides must then be divisible by ``2 ** depth``) or ``conv_transpose``
        (stride 2, aimed at the skip's size, so any face size works).
    norm : str
        ``batch``, ``group``, ``instance`` or ``none``, after every block's conv.
    activation : str
        After every block (:data:`geoconv.ops.activations.ACTIVATIONS`; ``identity``
        makes the network linear).
    sigmoid : bool
        Squash the output into (0, 1). Leave it off when the loss takes logits
        (``BCEWithLogitsLoss``).
    norm_groups : int
        Groups for ``norm="group"``; it must divide every width.

    Attributes
    ----------
    encoder : torch.nn.ModuleList
        ``depth + 1`` :class:`~geoconv.nn.EncoderBlock`; block ``l`` outputs ``widths[l]``
        channels at ``1 / 2**l`` of the input's face size.
    decoder : torch.nn.ModuleList
        ``depth`` :class:`~geoconv.nn.DecoderBlock`, coarsest first; the one that ends at
        scale ``l`` takes the encoder's output at scale ``l`` as its skip.
    head : Head
        A 1×1 ``conv`` (whatever ``op`` is: pointwise, so the same on every grid) and
        the optional sigmoid.
    depth : int
        The number of halvings, ``len(widths) - 1``.

    Shapes
    ------
    ``(B, C_in, *spatial) -> (B, C_out, *spatial)`` in the grid's layout: ``(B, C, H, W)``
    (planar; equirect with ``W = 2H``), ``(B, C, 6, F, F)`` (cube map),
    ``(B, C, 12, n, n)`` (HEALPix). Each face side ``n`` goes through ``ceil(n / 2)`` at
    each scale and back.

    Notes
    -----
    The hyper-parameters, as they appear in ``conf/model/unet.yaml`` and the op group:

    ======================  ==================================  ===========================
    config key              what it sets                        here
    ======================  ==================================  ===========================
    ``model.widths``        depth (its length − 1) and widths   ``widths``
    ``op.params``           kernel size, dilation, op extras    ``params``
    ``model.down``          stride-2 conv or pooling            ``down``
    ``model.up``            bilinear or transposed conv         ``up``
    ``model.norm``          normalisation after each conv       ``norm``, ``norm_groups``
    ``model.activation``    activation after each block         ``activation``
    ``model.sigmoid``       sigmoid on the output               ``sigmoid``
    ``padding_mode``        every padding (the ablation key)    ``padding_mode``
    ======================  ==================================  ===========================

    Each block holds one conv, so along the deepest path (down to the coarsest scale and
    back) the convs alone give a theoretical receptive field of

    .. math::

        r = 1 + d\,(k - 1)\,(2^{D + 1} - 1)

    input pixels per axis, with :math:`k` the kernel size and :math:`d` the dilation (15
    for 3×3 convs and three widths); the pools and the upsampling widen it (measured at a
    centre pixel with three widths: 21 with ``upsample``, 17 with ``conv_transpose``).

    With the grid's own padding, the network is equivariant to the grid's exact pixel
    symmetries that map the sampling lattice of every scale onto itself (batch, group and
    instance statistics are invariant under pixel permutations): longitude rolls by
    multiples of ``2 ** depth`` pixels on equirect, and quarter turns about the pole on
    HEALPix, which permute base faces without turning them. On the cube map a quarter
    turn also turns the polar faces in their plane, which only ``rot90``-invariant
    kernels commute with.

    Examples
    --------
    >>> import torch
    >>> net = UNet("conv", 3, 1, grid="equirect", widths=(8, 16, 32), down="max_pool", sigmoid=True)
    >>> y = net(torch.randn(2, 3, 16, 32))
    >>> y.shape, bool(((y > 0) & (y < 1)).all())
    (torch.Size([2, 1, 16, 32]), True)
    >>> [len(net.encoder), len(net.decoder), net.depth]
    [3, 2, 2]
    """

    def __init__(
        self,
        op: str,
        in_channels: int,
        out_channels: int,
        grid: str = "planar",
        widths: Sequence[int] = (16, 32, 64),
        params: Mapping[str, Any] | None = None,
        padding_mode: str | None = None,
        down: str = "stride",
        up: str = "upsample",
        norm: str = "batch",
        activation: str = "relu",
        sigmoid: bool = False,
        norm_groups: int = 8,
    ) -> None:
        super().__init__()
        in_channels = check_int("in_channels", in_channels, minimum=1)
        out_channels = check_int("out_channels", out_channels, minimum=1)
        grid = get_grid(grid).name
        if not isinstance(op, str) or op not in list_ops():
            raise unknown_name("op", op, unet_ops())
        spec = get_op(op)
        if op not in unet_ops():
            raise ParameterError(
                f"op {op!r} does not map in_channels to out_channels at the input's resolution (a pooling, "
                f"resampling or transposed op); a UNet is built from one of: {', '.join(map(repr, unet_ops()))}"
            )
        spec.check_grid(grid)
        widths = _check_widths(widths)
        if not isinstance(down, str) or down not in DOWN_MODES:
            raise unknown_name("down", down, DOWN_MODES)
        if not isinstance(up, str) or up not in UP_MODES:
            raise unknown_name("up", up, UP_MODES)
        fields = {p.name for p in spec.parameters()}
        if down == "stride" and "stride" not in fields:
            raise ParameterError(
                f"down='stride' needs an op with a stride, and op {op!r} has none; downsample with a pooling "
                "op instead: down='avg_pool', 'max_pool' or 'blur_pool'"
            )
        geometry, extra = _split_params(op, params, padding_mode)
        mode = geometry["padding_mode"]
        block = {
            "grid": grid,
            "conv": op,
            "conv_params": extra,
            "kernel_size": geometry["kernel_size"],
            "dilation": geometry["dilation"],
            "padding_mode": mode,
            "norm": norm,
            "norm_groups": norm_groups,
            "activation": activation,
        }

        encoder = [EncoderBlock(in_channels, widths[0], stride=1, **block)]
        for previous, width in itertools.pairwise(widths):
            if down == "stride":
                encoder.append(EncoderBlock(previous, width, stride=2, **block))
            else:
                encoder.append(
                    EncoderBlock(previous, width, stride=1, pool=down, pool_params=_POOL_PARAMS[down], **block)
                )
        self.encoder = nn.ModuleList(encoder)

        up_params: dict[str, Any] = {}
        if up == "conv_transpose":
            if geometry["up_kernel"] is not None:
                up_params["kernel_size"] = geometry["up_kernel"]
            if mode is not None:
                up_params["padding_mode"] = mode
        self.decoder = nn.ModuleList(
            DecoderBlock(width, skip, upsample=up, upsample_params=up_params, skip_channels=skip, **block)
            for width, skip in zip(widths[:0:-1], widths[-2::-1], strict=True)
        )
        self.head = Head(widths[0], out_channels, grid=grid, kernel_size=1, sigmoid=sigmoid, conv="conv")

        self.op, self.grid, self.widths, self.down, self.up = op, grid, widths, down, up
        self.in_channels, self.out_channels = in_channels, out_channels

    @property
    def depth(self) -> int:
        """The number of halvings (and of decoder blocks), ``len(widths) - 1``."""
        return len(self.widths) - 1

    def _check_size(self, x: torch.Tensor) -> None:
        grid = get_grid(self.grid)
        x = grid.check(x)
        if x.shape[1] != self.in_channels:
            raise ShapeError(
                f"x must have in_channels={self.in_channels} channels in dim 1 {grid.layout}, got shape "
                f"{tuple(x.shape)}"
            )
        factor = 2**self.depth
        spatial = grid.spatial_shape(x)
        if self.up == "upsample" and any(side % factor for side in spatial):
            raise ShapeError(
                f"up='upsample' doubles each face side at each of the {self.depth} scales, so the face size "
                f"{spatial} of x {tuple(x.shape)} must be divisible by 2 ** depth = {factor}; use "
                "up='conv_transpose' for other sizes"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Encode, decode with the skip connections, and apply the head.

        Parameters
        ----------
        x : torch.Tensor
            ``(B, C_in, *spatial)`` in the grid's layout.

        Returns
        -------
        torch.Tensor
            ``(B, C_out, *spatial)``: logits, or probabilities with ``sigmoid=True``.

        Raises
        ------
        ShapeError
            For a tensor not in the grid's layout, the wrong channel count, or (with
            ``up="upsample"``) a face side not divisible by ``2 ** depth``.
        """
        self._check_size(x)
        skips = []
        for block in self.encoder:
            x = block(x)
            skips.append(x)
        skips.pop()  # the coarsest scale is the decoder's input, not a skip
        for block in self.decoder:
            x = block(x, skips.pop())
        return self.head(x)

    def extra_repr(self) -> str:
        return (
            f"op={self.op!r}, grid={self.grid!r}, widths={self.widths}, down={self.down!r}, up={self.up!r}, "
            f"depth={self.depth}"
        )
