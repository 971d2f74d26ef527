r"""Convolutions: ``conv``, ``conv_transpose`` and ``gated_conv``.

Each is written once against the grid interface: pad in the grid's layout, fold the
faces into the batch, run the planar kernel, unfold. On the sphere ``conv`` and
``conv_transpose`` may instead run torch's zero-padded kernel plus a border correction
from the halo strips (:mod:`geoconv.ops._halo`; :func:`geoconv.ops.conv_path` picks).

.. math::

    y_{o}(i, j) = b_o + \sum_{c} \sum_{u, v} w_{o c u v}\,
                  \tilde x_c(s_h i + d_h u,\; s_w j + d_w v)

where :math:`\tilde x` is the input after the grid's padding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from geoconv._checks import check_bool, check_int, check_pair
from geoconv.errors import ParameterError, ShapeError
from geoconv.grids import Grid, get_grid, list_grids
from geoconv.ops._common import (
    GridOp,
    IntOrPair,
    PaddingSpec,
    check_axis,
    check_input_size,
    check_output_faces,
    check_padding,
    init_conv_parameters,
    resolve_padding,
    same_layer,
)
from geoconv.ops._halo import halo_conv, select
from geoconv.ops.activations import make_activation
from geoconv.ops.registry import EVERY_GRID, register_op
from geoconv.sizes import Layer, conv_output_size, conv_transpose_output_size, same_padding

__all__ = [
    "Conv",
    "ConvConfig",
    "ConvTranspose",
    "ConvTransposeConfig",
    "GatedConv",
    "GatedConvConfig",
]


@dataclass
class ConvConfig:
    """Parameters of ``conv``.

    Attributes
    ----------
    kernel_size, stride, dilation : int or (int, int)
        As in ``torch.nn.Conv2d``.
    padding : int, pair, 4-tuple, ``"same"`` or ``"valid"``
        ``"same"`` is TensorFlow's: output size ``ceil(input / stride)``, the odd extra
        pixel on the bottom/right, for any kernel, stride and dilation.
    groups : int
        Both channel counts must be divisible by it.
    bias : bool
        Add a learned bias.
    padding_mode : str, optional
        ``zeros``, ``constant``, ``reflect``, ``replicate``, ``circular``, or a grid's own
        mode; ``None`` means the grid's default (``zeros`` on the plane).
    value : float
        Fill value for ``padding_mode="constant"``.
    hexagonal : bool
        Restrict the 3x3 kernel to a pixel and its 6 mesh neighbours, on a grid whose charts
        are a hexagonal lattice (one with a ``hex_mask``: ``icosahedral``). The 2 other
        taps are zero at initialisation and stay zero: the weight is masked in the forward
        pass, so their gradients are zero too.
    """

    kernel_size: IntOrPair = 3
    stride: IntOrPair = 1
    padding: PaddingSpec = "same"
    dilation: IntOrPair = 1
    groups: int = 1
    bias: bool = True
    padding_mode: str | None = None
    value: float = 0.0
    hexagonal: bool = False

    def __post_init__(self) -> None:
        self.kernel_size = check_pair("kernel_size", self.kernel_size, minimum=1)
        self.stride = check_pair("stride", self.stride, minimum=1)
        self.dilation = check_pair("dilation", self.dilation, minimum=1)
        self.padding = check_padding(self.padding)
        self.groups = check_int("groups", self.groups, minimum=1)
        self.bias = check_bool("bias", self.bias)
        self.hexagonal = check_bool("hexagonal", self.hexagonal)


def _hex_mask(grid: Grid, kernel_size: tuple[int, int]) -> torch.Tensor:
    """The 3x3 tap mask of ``conv(hexagonal=True)`` on ``grid``: 1 on the centre and its 6 mesh neighbours."""
    mask = getattr(grid, "hex_mask", None)
    if mask is None:
        hexagonal = [name for name in list_grids() if getattr(get_grid(name), "hex_mask", None) is not None]
        raise ParameterError(
            f"conv: hexagonal=True needs a grid whose charts are a hexagonal lattice (a grid with a hex_mask: "
            f"{', '.join(map(repr, hexagonal)) or 'none registered'}), got grid {grid.name!r}"
        )
    if kernel_size != (3, 3):
        raise ParameterError(
            f"conv: hexagonal=True needs kernel_size=3 (a 3x3 kernel: the centre and its 6 neighbours), "
            f"got kernel_size={kernel_size}"
        )
    return torch.as_tensor(mask, dtype=torch.get_default_dtype())


def _check_groups(in_channels: int, out_channels: int, groups: int) -> None:
    for name, channels in (("in_channels", in_channels), ("out_channels", out_channels)):
        if channels % groups:
            raise ParameterError(f"{name}={channels} must be divisible by groups={groups}")


_AXES = ("height (dim -2)", "width (dim -1)")


def _check_output_size(output_size: object) -> tuple[int, int]:
    """Read ``output_size`` as ``(H', W')``: an int, a pair, or a full ``(B, C, H', W')`` shape as torch allows."""
    if isinstance(output_size, Sequence) and not isinstance(output_size, str) and len(output_size) == 4:
        output_size = tuple(output_size)[-2:]
    return check_pair("output_size", output_size, minimum=1)


@register_op("conv", grids=EVERY_GRID, config=ConvConfig)
class Conv(GridOp):
    """Convolution with stride, dilation, groups, "same"/"valid" and every padding mode.

    Parameters
    ----------
    in_channels, out_channels : int
        Channel counts.
    grid : str
        The grid the input lives on.
    config : ConvConfig
        Kernel, stride, padding, dilation, groups, bias, padding mode.

    Shapes
    ------
    ``(B, C_in, H, W) -> (B, C_out, H', W')`` with ``H' = ceil(H / s)`` for "same", and
    :func:`geoconv.sizes.conv_output_size` otherwise.

    Examples
    --------
    >>> import torch
    >>> from geoconv import build_op
    >>> conv = build_op("conv", 2, 4, kernel_size=3, padding_mode="circular")
    >>> conv(torch.randn(1, 2, 8, 8)).shape
    torch.Size([1, 4, 8, 8])
    """

    def __init__(self, in_channels: int, out_channels: int, grid: str = "planar", config: ConvConfig | None = None):
        config = config or ConvConfig()
        super().__init__(grid, config.padding_mode, value=config.value, op_name="conv")
        _check_groups(in_channels, out_channels, config.groups)
        self.config = config
        self.in_channels, self.out_channels = in_channels, out_channels
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels // config.groups, *config.kernel_size))
        self.bias = nn.Parameter(torch.empty(out_channels)) if config.bias else None
        init_conv_parameters(self.weight, self.bias)
        # Not persistent: the mask is the grid's, so a square kernel's state_dict loads into a hexagonal conv.
        mask = _hex_mask(self.grid, config.kernel_size) if config.hexagonal else None
        self.hex_mask: torch.Tensor | None
        self.register_buffer("hex_mask", mask, persistent=False)
        if mask is not None:
            with torch.no_grad():
                self.weight.masked_fill_(mask == 0, 0.0)

    def kernel_weight(self) -> torch.Tensor:
        """The weight the kernel applies: :attr:`weight`, with the non-neighbour taps zeroed when hexagonal.

        Masking here (not only at initialisation) keeps those taps out of the output and
        their gradients zero, whatever an optimiser or a loaded state_dict puts there.
        """
        return self.weight if self.hex_mask is None else self.weight * self.hex_mask.to(self.weight.dtype)

    def padding_widths(self, spatial: tuple[int, int]) -> tuple[int, int, int, int]:
        """The ``(top, bottom, left, right)`` padding for an input of this spatial size."""
        cfg = self.config
        return resolve_padding(cfg.padding, spatial, cfg.kernel_size, cfg.stride, cfg.dilation)

    def output_shape(self, spatial: tuple[int, int]) -> tuple[int, int]:
        """Spatial output size for an input of spatial size ``spatial``."""
        top, bottom, left, right = self.padding_widths(spatial)
        cfg = self.config
        sizes = []
        for axis, pads in enumerate(((top, bottom), (left, right))):
            try:
                sizes.append(
                    conv_output_size(spatial[axis], cfg.kernel_size[axis], cfg.stride[axis], pads, cfg.dilation[axis])
                )
            except ParameterError as err:
                raise ParameterError(f"along the {_AXES[axis]} of x: {err}") from None
        return sizes[0], sizes[1]

    def output_size(self, input_size: tuple[int, int]) -> tuple[int, int]:
        """The output face size for faces of ``input_size`` ``(H, W)``; same as :meth:`output_shape`."""
        return self.output_shape(check_pair("input_size", input_size, minimum=1))

    def layers(self, input_size: tuple[int, int] | None = None, axis: int = -1) -> list[Layer]:
        """One layer: the kernel, stride, dilation and left (``axis=-1``) or top (``-2``) padding.

        ``input_size`` ``(H, W)`` is needed only for "same" padding with a stride above 1.

        >>> from geoconv import build_op
        >>> build_op("conv", 1, 1, kernel_size=5, dilation=2).layers()
        [Layer(kernel_size=5, stride=1, padding=4, dilation=2)]
        """
        axis, size, cfg = check_axis(axis), check_input_size(input_size), self.config
        if cfg.padding == "same" and size is None:
            return [same_layer("conv", size, axis, cfg.kernel_size, cfg.stride, cfg.dilation)]
        top, _, left, _ = self.padding_widths(size or (1, 1))
        a = axis + 2
        return [Layer(cfg.kernel_size[a], cfg.stride[a], (top, left)[a], cfg.dilation[a])]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.check_input(x, self.in_channels, floating=True, allow_complex=True, like=self.weight)
        spatial = self.grid.spatial_shape(x)
        out = self.output_shape(spatial)  # raises a GeoconvError when the kernel does not fit
        widths = self.padding_widths(spatial)
        top, bottom, left, right = widths
        cfg = self.config
        weight = self.kernel_weight()
        # On the plane torch pads zeros inside the kernel for free: no extra memory pass.
        implicit = self.torch_pads_itself and self.padding_mode == "zeros" and top == bottom and left == right

        def kernel(planes: torch.Tensor, padding: tuple[int, int]) -> torch.Tensor:
            return F.conv2d(planes, weight, self.bias, cfg.stride, padding, cfg.dilation, cfg.groups)

        settings = {"kernel_size": cfg.kernel_size, "stride": cfg.stride, "padding": cfg.padding}
        settings["dilation"] = cfg.dilation
        halo = None
        if not implicit:
            halo = select(self.grid, x, self.padding_mode, widths, cfg.kernel_size, cfg.stride, cfg.dilation)
        if halo is not None:
            # torch's zero-padded conv plus the border correction (geoconv.ops._halo).
            check_output_faces(self.op_name, self.grid, x, out, **settings)
            return halo_conv(x, weight, self.bias, halo, cfg.groups)
        return self.run_planar(x, kernel, widths, out, implicit=implicit, value=cfg.value, settings=settings)

    def extra_repr(self) -> str:
        cfg = self.config
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={cfg.kernel_size}, stride={cfg.stride}, "
            f"padding={cfg.padding!r}, dilation={cfg.dilation}, groups={cfg.groups}, bias={cfg.bias}, "
            + ("hexagonal=True, " if cfg.hexagonal else "")
            + super().extra_repr()
        )


@dataclass
class ConvTransposeConfig:
    """Parameters of ``conv_transpose``.

    Attributes
    ----------
    kernel_size, stride, dilation : int or (int, int)
        As in ``torch.nn.ConvTranspose2d``.
    padding : int, pair or ``"same"``
        An int crops that many pixels from each side of the full output, as in torch.
        ``"same"`` makes the layer the adjoint of a "same" ``conv`` with the same
        kernel, stride and dilation: the output is ``input * stride`` (or the
        ``output_size`` given at call time).
    output_padding : int or (int, int)
        Extra rows/columns at the bottom/right (int padding only); smaller than the
        stride or the dilation.
    groups : int
        Both channel counts must be divisible by it.
    bias : bool
        Add a learned bias.
    padding_mode : str, optional
        The padding of the conv this layer is the adjoint of; ``None`` means the grid's
        default (``zeros`` on the plane, ``sphere``/``cube``/``healpix`` on the sphere).
        The adjoint of zero padding crops; the adjoint of a wrapping or spherical padding
        adds each border pixel back onto the pixel it was copied from.
    """

    kernel_size: IntOrPair = 3
    stride: IntOrPair = 2
    padding: IntOrPair | Literal["same"] = "same"
    output_padding: IntOrPair = 0
    dilation: IntOrPair = 1
    groups: int = 1
    bias: bool = True
    padding_mode: str | None = None

    def __post_init__(self) -> None:
        self.kernel_size = check_pair("kernel_size", self.kernel_size, minimum=1)
        self.stride = check_pair("stride", self.stride, minimum=1)
        self.dilation = check_pair("dilation", self.dilation, minimum=1)
        if isinstance(self.padding, str):
            if self.padding.lower() != "same":
                raise ParameterError(f"padding must be 'same', an int or a pair, got {self.padding!r}")
            self.padding = "same"
        else:
            self.padding = check_pair("padding", self.padding, minimum=0)
        self.output_padding = check_pair("output_padding", self.output_padding, minimum=0)
        for axis in range(2):
            limit = max(self.stride[axis], self.dilation[axis])
            if self.output_padding[axis] >= limit:
                raise ParameterError(
                    f"output_padding must be smaller than max(stride, dilation)={limit} along each axis, "
                    f"got output_padding={self.output_padding}"
                )
        if self.padding == "same" and self.output_padding != (0, 0):
            raise ParameterError("output_padding applies to int padding; with padding='same' pass output_size")
        self.groups = check_int("groups", self.groups, minimum=1)
        self.bias = check_bool("bias", self.bias)


@register_op("conv_transpose", grids=EVERY_GRID, config=ConvTransposeConfig)
class ConvTranspose(GridOp):
    r"""Transposed convolution: the adjoint of ``conv``, for learned upsampling.

    With the same weights, :math:`\langle \mathrm{conv}\,x, y\rangle =
    \langle x, \mathrm{conv}^\top y\rangle`; each input pixel scatters the kernel,
    scaled by its value, into the output.

    Shapes
    ------
    ``(B, C_in, H, W) -> (B, C_out, H', W')`` with ``H' = H * s`` for "same", else
    :func:`geoconv.sizes.conv_transpose_output_size`; ``forward(x, output_size=(H', W'))``
    picks one of the sizes a stride allows.

    Examples
    --------
    >>> import torch
    >>> from geoconv import build_op
    >>> up = build_op("conv_transpose", 4, 2, kernel_size=3, stride=2)
    >>> up(torch.randn(1, 4, 5, 5)).shape
    torch.Size([1, 2, 10, 10])
    >>> up(torch.randn(1, 4, 5, 5), output_size=(9, 9)).shape
    torch.Size([1, 2, 9, 9])
    """

    def __init__(
        self, in_channels: int, out_channels: int, grid: str = "planar", config: ConvTransposeConfig | None = None
    ):
        config = config or ConvTransposeConfig()
        super().__init__(grid, config.padding_mode, op_name="conv_transpose")
        _check_groups(in_channels, out_channels, config.groups)
        self.config = config
        self.in_channels, self.out_channels = in_channels, out_channels
        self.weight = nn.Parameter(torch.empty(in_channels, out_channels // config.groups, *config.kernel_size))
        self.bias = nn.Parameter(torch.empty(out_channels)) if config.bias else None
        init_conv_parameters(self.weight, self.bias)

    def _output_size(self, axis: int, size: int, target: int | None) -> tuple[int, int, int]:
        """Along one axis: the output size and the padding (before, after) of the conv this is the adjoint of."""
        cfg = self.config
        k, s, d = cfg.kernel_size[axis], cfg.stride[axis], cfg.dilation[axis]
        if cfg.padding == "same":
            out = size * s if target is None else target
            if -(-out // s) != size:
                raise ShapeError(
                    f"output_size[{axis}]={out} is not reachable with padding='same': it needs "
                    f"ceil(output_size / stride) == input size {size}, i.e. output_size in "
                    f"[{(size - 1) * s + 1}, {size * s}]"
                )
            return (out, *same_padding(out, k, s, d))
        p = cfg.padding[axis]
        try:
            base = conv_transpose_output_size(size, k, s, p, d, 0)
        except ParameterError as err:
            raise ParameterError(f"along the {_AXES[axis]} of x (size {size}): {err}") from None
        if target is None:
            return base + cfg.output_padding[axis], p, p
        extra = target - base
        if not 0 <= extra < max(s, d):
            raise ShapeError(
                f"output_size[{axis}]={target} is not reachable: with this kernel, stride and padding "
                f"the output is in [{base}, {base + max(s, d) - 1}] along that axis"
            )
        return target, p, p

    def layers(self, input_size: tuple[int, int] | None = None, axis: int = -1) -> list[Layer]:
        """Refuse: an upsampling has no place in the receptive-field arithmetic of :class:`~geoconv.sizes.Layer`.

        That arithmetic (Araujo et al. 2019) composes layers with integer strides >= 1; a
        transposed conv has a stride of ``1 / s``, one output pixel seeing a fraction of an
        input pixel.
        """
        raise ParameterError(
            f"conv_transpose upsamples (an output pixel per 1/stride input pixels, stride={self.config.stride}); "
            "the receptive-field arithmetic of "
            "geoconv.sizes.Layer covers layers with integer strides >= 1 only"
        )

    def forward(self, x: torch.Tensor, output_size: int | Sequence[int] | None = None) -> torch.Tensor:
        """Upsample ``x``.

        Parameters
        ----------
        x : torch.Tensor
            Shape ``(B, C_in, H, W)``, the dtype and device of the op's parameters.
        output_size : int, (H', W') or (B, C_out, H', W'), optional
            The output's spatial size, one of those the stride allows (see the class doc).
            By default ``H * s`` for "same", else
            :func:`geoconv.sizes.conv_transpose_output_size` with the configured ``output_padding``.

        Returns
        -------
        torch.Tensor
            Shape ``(B, C_out, H', W')``.

        Raises
        ------
        GeoconvError
            For a wrong shape, channel count, dtype or device, or an unreachable ``output_size``.
        """
        x = self.check_input(x, self.in_channels, floating=True, allow_complex=True, like=self.weight)
        spatial = self.grid.spatial_shape(x)
        targets = (None, None) if output_size is None else _check_output_size(output_size)
        (out_h, top, bottom), (out_w, left, right) = (self._output_size(a, spatial[a], targets[a]) for a in range(2))
        cfg = self.config
        check_output_faces(
            "conv_transpose",
            self.grid,
            x,
            (out_h, out_w),
            kernel_size=cfg.kernel_size,
            stride=cfg.stride,
            padding=cfg.padding,
            output_padding=cfg.output_padding,
            output_size=output_size,
        )
        halo = select(
            self.grid,
            x,
            self.padding_mode,
            (top, bottom, left, right),
            cfg.kernel_size,
            cfg.stride,
            cfg.dilation,
            face=(out_h, out_w),
        )
        if halo is not None:
            # torch's transposed conv, cropped, plus the border strips folded back (geoconv.ops._halo).
            return halo_conv(x, self.weight, self.bias, halo, cfg.groups, transposed=True)
        planes = self.grid.to_planes(x)
        full = F.conv_transpose2d(planes, self.weight, None, cfg.stride, 0, 0, cfg.groups, cfg.dilation)
        # `full` covers the padded input of the conv this is the adjoint of, up to the
        # positions no kernel reached, which are zero.
        full = F.pad(full, (0, out_w + left + right - full.shape[-1], 0, out_h + top + bottom - full.shape[-2]))
        if self.padding_mode == "zeros":
            # The adjoint of zero padding is a crop.
            y = self.grid.from_planes(full[..., top : top + out_h, left : left + out_w], batch=x.shape[0])
        else:
            # The adjoint of the grid's padding folds the border back onto the pixels it came from.
            padded = self.grid.from_planes(full, batch=x.shape[0])
            shape = (*x.shape[:1], self.out_channels, *x.shape[2:-2], out_h, out_w)
            source = x.new_empty(shape)
            y = self.grid.pad_adjoint(padded, (top, bottom, left, right), self.padding_mode, source)
        if self.bias is not None:
            # In y's dtype: under autocast y is bf16/fp16 and a float32 bias would promote it.
            y = y + self.bias.to(y.dtype).view(1, -1, *[1] * (y.dim() - 2))
        return y

    def extra_repr(self) -> str:
        cfg = self.config
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={cfg.kernel_size}, stride={cfg.stride}, "
            f"padding={cfg.padding!r}, output_padding={cfg.output_padding}, dilation={cfg.dilation}, "
            f"groups={cfg.groups}, bias={cfg.bias}, " + super().extra_repr()
        )


@dataclass
class GatedConvConfig(ConvConfig):
    """Parameters of ``gated_conv``: those of ``conv`` plus the feature activation.

    Attributes
    ----------
    activation : str
        :math:`\\phi`: ``identity``, ``elu`` (the default, as in DeepFill v2), ``relu``,
        ``leaky_relu``, ``tanh`` (or any name in :data:`geoconv.ops.activations.ACTIVATIONS`).
    """

    activation: str = "elu"

    def __post_init__(self) -> None:
        super().__post_init__()
        make_activation(self.activation)


@register_op("gated_conv", grids=EVERY_GRID, config=GatedConvConfig)
class GatedConv(nn.Module):
    r"""Gated convolution (Yu et al., ICCV 2019): a learned soft mask per pixel and channel.

    .. math::

        O = \phi\bigl(k_{feature} * I\bigr) \odot \sigma\bigl(k_{gate} * I\bigr)

    Both kernels run as one ``conv`` with twice the output channels, arranged so that
    each group holds its feature channels then its gate channels; :meth:`kernels` gives
    the two kernels as separate tensors.

    Examples
    --------
    >>> import torch
    >>> from geoconv import build_op
    >>> gated = build_op("gated_conv", 3, 8, activation="relu")
    >>> gated(torch.randn(2, 3, 16, 16)).shape
    torch.Size([2, 8, 16, 16])
    """

    def __init__(
        self, in_channels: int, out_channels: int, grid: str = "planar", config: GatedConvConfig | None = None
    ):
        super().__init__()
        config = config or GatedConvConfig()
        _check_groups(in_channels, out_channels, config.groups)
        self.config = config
        self.in_channels, self.out_channels = in_channels, out_channels
        self.conv = Conv(in_channels, 2 * out_channels, grid, config)
        self.activation = make_activation(config.activation)

    def _split(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        groups = self.config.groups
        per_group = t.reshape(t.shape[0], groups, 2, self.out_channels // groups, *t.shape[2:])
        rest = t.shape[2:]
        return (
            per_group[:, :, 0].reshape(t.shape[0], self.out_channels, *rest),
            per_group[:, :, 1].reshape(t.shape[0], self.out_channels, *rest),
        )

    def kernels(self) -> dict[str, torch.Tensor | None]:
        """The two convolutions as plain tensors.

        Returns
        -------
        dict
            ``feature_weight`` and ``gate_weight`` of shape ``(C_out, C_in / groups, kh, kw)``,
            ``feature_bias`` and ``gate_bias`` of shape ``(C_out,)`` (``None`` without bias).
        """
        feature_weight, gate_weight = (w[0] for w in self._split(self.conv.weight[None]))
        feature_bias = gate_bias = None
        if self.conv.bias is not None:
            feature_bias, gate_bias = (b[0] for b in self._split(self.conv.bias[None]))
        return {
            "feature_weight": feature_weight,
            "gate_weight": gate_weight,
            "feature_bias": feature_bias,
            "gate_bias": gate_bias,
        }

    def layers(self, input_size: tuple[int, int] | None = None, axis: int = -1) -> list[Layer]:
        """One layer, that of its conv: feature and gate kernels share the geometry; see :meth:`Conv.layers`."""
        return self.conv.layers(input_size, axis)

    def output_size(self, input_size: tuple[int, int]) -> tuple[int, int]:
        """The output face size for faces of ``input_size``; see :meth:`Conv.output_size`."""
        return self.conv.output_size(input_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feature, gate = self._split(self.conv(x))
        return self.activation(feature) * torch.sigmoid(gate)
