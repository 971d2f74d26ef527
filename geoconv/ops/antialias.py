r"""Shift-robust downsampling: ``blur_pool`` and ``aps_pool``.

``blur_pool`` (Zhang, "Making Convolutional Networks Shift-Invariant Again", ICML 2019)
low-passes every channel with a binomial filter before subsampling, so that a shift of
the input moves the output smoothly instead of aliasing. ``aps_pool`` (Chaman &
Dokmanić, "Truly Shift-Invariant Convolutional Neural Networks", CVPR 2021) picks the
subsampling grid from the signal itself: of the :math:`s^2` polyphase components it keeps
the one with the largest norm, which makes the result exactly invariant to circular
shifts, up to a circular shift of the output.

Both keep the channel count.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from geoconv._checks import check_float, check_int, check_pair
from geoconv.errors import ShapeError
from geoconv.ops._common import (
    IntOrPair,
    SameChannelsOp,
    check_axis,
    check_input_size,
    check_output_faces,
    same_layer,
)
from geoconv.ops.registry import EVERY_GRID, register_op
from geoconv.sizes import Layer, same_padding

__all__ = [
    "APSPool",
    "APSPoolConfig",
    "BlurPool",
    "BlurPoolConfig",
    "binomial_filter",
]

MAX_FILTER_SIZE = 7


def binomial_filter(size: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    r"""The 2-D binomial filter of side ``size`` (1 to 7), normalised to sum 1.

    The 1-D taps are row ``size - 1`` of Pascal's triangle over :math:`2^{size-1}`,
    built as ``size - 1`` box filters ``[1, 1] / 2`` in a row (the reason the binomial
    filter tends to a Gaussian); the 2-D filter is their outer product.

    Returns
    -------
    torch.Tensor
        Shape ``(size, size)``.

    >>> binomial_filter(3).tolist()
    [[0.0625, 0.125, 0.0625], [0.125, 0.25, 0.125], [0.0625, 0.125, 0.0625]]
    """
    size = check_int("filter_size", size, minimum=1, maximum=MAX_FILTER_SIZE)
    taps = torch.ones(1, dtype=torch.float64)
    box = torch.tensor([[[0.5, 0.5]]], dtype=torch.float64)
    for _ in range(size - 1):
        taps = F.conv1d(F.pad(taps.view(1, 1, -1), (1, 1)), box).flatten()
    return torch.outer(taps, taps).to(dtype)


class _BinomialBlur(SameChannelsOp):
    """Depthwise binomial filter with "same" padding, then subsampling by ``stride``.

    The shared engine of ``blur_pool`` (stride 2) and ``aps_pool``'s optional blur (stride 1).
    """

    def __init__(
        self,
        op_name: str,
        in_channels: int,
        out_channels: int | None,
        grid: str,
        filter_size: int,
        stride: tuple[int, int],
        padding_mode: str | None,
        planar_default: str,
        value: float,
    ) -> None:
        super().__init__(op_name, in_channels, out_channels, grid, padding_mode, planar_default, value)
        channels = self.in_channels
        self.filter_size, self.stride, self.value = filter_size, stride, value
        weight = binomial_filter(filter_size, torch.get_default_dtype())
        # A buffer follows .to(device/dtype); non-persistent because it is fixed by the
        # config, so checkpoints stay free of it.
        self.register_buffer("filter", weight.expand(channels, 1, filter_size, filter_size).clone(), persistent=False)

    def output_size(self, input_size: tuple[int, int]) -> tuple[int, int]:
        """``(ceil(H / s), ceil(W / s))`` for faces of ``input_size`` ``(H, W)``: "same" padding."""
        height, width = check_pair("input_size", input_size, minimum=1)
        return -(-height // self.stride[0]), -(-width // self.stride[1])

    def layers(self, input_size: tuple[int, int] | None = None, axis: int = -1) -> list[Layer]:
        """One layer: the binomial taps, the stride and the "same" padding along ``axis``.

        ``input_size`` is needed for a stride above 1, where the padding's split depends on it.

        >>> from geoconv import build_op
        >>> build_op("blur_pool", 1, filter_size=5).layers((8, 8))
        [Layer(kernel_size=5, stride=2, padding=1, dilation=1)]
        """
        size = (self.filter_size, self.filter_size)
        return [same_layer(self.op_name, check_input_size(input_size), check_axis(axis), size, self.stride)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.check_input(x, floating=True, like=self.filter, match_dtype=False, what="filter")
        height, width = self.grid.spatial_shape(x)
        top, bottom = same_padding(height, self.filter_size, self.stride[0])
        left, right = same_padding(width, self.filter_size, self.stride[1])

        def kernel(planes: torch.Tensor, padding: tuple[int, int]) -> torch.Tensor:
            # The filter is data, not a parameter: it follows the input's dtype.
            return F.conv2d(planes, self.filter.to(planes.dtype), stride=self.stride, groups=self.in_channels)

        out = self.output_size((height, width))
        widths = (top, bottom, left, right)
        return self.run_planar(x, kernel, widths, out, value=self.value, settings={"stride": self.stride})

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, filter_size={self.filter_size}, stride={self.stride}, grid={self.grid.name!r}, "
            f"padding_mode={self.padding_mode!r}"
        )


@dataclass
class BlurPoolConfig:
    """Parameters of ``blur_pool``.

    Attributes
    ----------
    filter_size : int
        Side of the binomial filter, 1 (no blur: plain subsampling) to 7; 3 is
        ``[1, 2, 1] / 4`` in each direction.
    stride : int or (int, int)
        The subsampling factor.
    padding_mode : str, optional
        ``None``: ``reflect`` on the plane (as in Zhang's code), the grid's own padding
        elsewhere; or any mode of the grid.
    value : float
        Fill value for ``padding_mode="constant"``.
    """

    filter_size: int = 3
    stride: IntOrPair = 2
    padding_mode: str | None = None
    value: float = 0.0

    def __post_init__(self) -> None:
        self.filter_size = check_int("filter_size", self.filter_size, minimum=1, maximum=MAX_FILTER_SIZE)
        self.stride = check_pair("stride", self.stride, minimum=1)
        self.value = check_float("value", self.value)


@register_op("blur_pool", grids=EVERY_GRID, config=BlurPoolConfig, same_channels=True)
class BlurPool(_BinomialBlur):
    r"""Anti-aliased downsampling (Zhang 2019): binomial blur per channel, then subsample.

    Keeps the channel count: ``out_channels`` must equal ``in_channels`` or be left out.

    .. math::

        y_c(i, j) = \sum_{u, v} b_u b_v\, \tilde x_c(s i + u, s j + v), \qquad
        b_u = \binom{n - 1}{u} 2^{-(n - 1)}

    with :math:`n` the filter size and :math:`\tilde x` the input padded "same"-style
    (TensorFlow's split, :func:`geoconv.sizes.same_padding`).

    Parameters
    ----------
    in_channels : int
        Channels of the input.
    out_channels : int, optional
        Equal to ``in_channels`` if given.
    grid : str
        The grid the input lives on.
    config : BlurPoolConfig
        Filter size, stride, padding mode.

    Shapes
    ------
    ``(B, C, H, W) -> (B, C, ceil(H / s), ceil(W / s))``. The filter is the buffer
    ``filter`` of shape ``(C, 1, n, n)``.

    Examples
    --------
    >>> import torch
    >>> from geoconv import build_op
    >>> blur = build_op("blur_pool", 3, filter_size=5)
    >>> blur(torch.randn(2, 3, 9, 9)).shape
    torch.Size([2, 3, 5, 5])
    >>> blur(torch.ones(1, 3, 8, 8)).unique().tolist()   # reflect padding keeps constants
    [1.0]
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int | None = None,
        grid: str = "planar",
        config: BlurPoolConfig | None = None,
    ) -> None:
        config = config or BlurPoolConfig()
        super().__init__(
            "blur_pool",
            in_channels,
            out_channels,
            grid,
            config.filter_size,
            config.stride,
            config.padding_mode,
            "reflect",
            config.value,
        )
        self.config = config


@dataclass
class APSPoolConfig:
    """Parameters of ``aps_pool``.

    Attributes
    ----------
    stride : int or (int, int)
        The subsampling factor :math:`s`; H and W must be divisible by it.
    filter_size : int
        Binomial blur before sampling, 1 (none) to 7.
    p : float
        The norm that ranks the polyphase components (``inf`` for the largest magnitude).
    padding_mode : str, optional
        For the blur. ``None``: ``circular`` on the plane (which keeps the circular-shift
        invariance exact), the grid's own padding elsewhere.
    value : float
        Fill value for ``padding_mode="constant"``.
    """

    stride: IntOrPair = 2
    filter_size: int = 1
    p: float = 2.0
    padding_mode: str | None = None
    value: float = 0.0

    def __post_init__(self) -> None:
        self.stride = check_pair("stride", self.stride, minimum=1)
        self.filter_size = check_int("filter_size", self.filter_size, minimum=1, maximum=MAX_FILTER_SIZE)
        self.p = check_float("p", self.p, positive=True)
        self.value = check_float("value", self.value)


@register_op("aps_pool", grids=EVERY_GRID, config=APSPoolConfig, same_channels=True)
class APSPool(SameChannelsOp):
    r"""Adaptive polyphase sampling (Chaman & Dokmanić 2021): keep the largest-norm component.

    Keeps the channel count: ``out_channels`` must equal ``in_channels`` or be left out.

    For stride :math:`s` the input (blurred first if ``filter_size > 1``) splits into
    :math:`s^2` polyphase components :math:`x^{(a,b)} = x[\dots, a::s, b::s]`; each sample
    keeps the one with the largest :math:`\ell_p` norm over all its channels and pixels:

    .. math::

        (a^*, b^*) = \operatorname*{argmax}_{a, b} \bigl\| x^{(a, b)} \bigr\|_p .

    A circular shift of the input permutes the components and shifts each circularly,
    so the output moves by a circular shift and nothing else: exact invariance, where
    plain strided sampling aliases. Ties go to the first component in row-major order.

    Parameters
    ----------
    in_channels : int
        Channels of the input.
    out_channels : int, optional
        Equal to ``in_channels`` if given.
    grid : str
        The grid the input lives on.
    config : APSPoolConfig
        Stride, blur filter size, norm, padding mode of the blur.

    Shapes
    ------
    ``(B, C, H, W) -> (B, C, H / s, W / s)``; H and W must be divisible by ``s``.

    Examples
    --------
    >>> import torch
    >>> from geoconv import build_op
    >>> aps = build_op("aps_pool", 1)
    >>> x = torch.tensor([[[[0.0, 1.0], [0.0, 0.0]]]])
    >>> aps(x).flatten().tolist(), aps.polyphase(x)[1].tolist()   # component (0, 1)
    ([1.0], [1])
    >>> aps(torch.randn(2, 1, 8, 6)).shape
    torch.Size([2, 1, 4, 3])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int | None = None,
        grid: str = "planar",
        config: APSPoolConfig | None = None,
    ) -> None:
        config = config or APSPoolConfig()
        super().__init__("aps_pool", in_channels, out_channels, grid, config.padding_mode, "circular")
        self.config = config
        self.blur = (
            _BinomialBlur(
                "aps_pool",
                in_channels,
                None,
                grid,
                config.filter_size,
                (1, 1),
                self.padding_mode,
                "circular",
                config.value,
            )
            if config.filter_size > 1
            else None
        )

    def output_size(self, input_size: tuple[int, int]) -> tuple[int, int]:
        """``(H / s, W / s)`` for faces of ``input_size`` ``(H, W)`` (the forward pass needs them divisible)."""
        height, width = check_pair("input_size", input_size, minimum=1)
        return height // self.config.stride[0], width // self.config.stride[1]

    def layers(self, input_size: tuple[int, int] | None = None, axis: int = -1) -> list[Layer]:
        """Its blur (when ``filter_size > 1``), then a 1-tap layer of its stride.

        The polyphase component it keeps depends on the input; the layers describe
        component 0, the reference (any other shifts the field by less than a stride).

        >>> from geoconv import build_op
        >>> build_op("aps_pool", 1, filter_size=3).layers()
        [Layer(kernel_size=3, stride=1, padding=1, dilation=1), Layer(kernel_size=1, stride=2, padding=0, dilation=1)]
        """
        axis = check_axis(axis)
        size = check_input_size(input_size)
        blur = self.blur.layers(size, axis) if self.blur is not None else []
        return [*blur, Layer(1, self.config.stride[axis + 2], 0, 1)]

    def polyphase(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The pooled output and the component each sample kept.

        Returns
        -------
        (torch.Tensor, torch.Tensor)
            The output ``(B, C, H / s, W / s)`` and, of shape ``(B,)``, the flat index
            ``a * s_w + b`` of the kept component ``x[..., a::s_h, b::s_w]``.
        """
        x = self.check_input(x, floating=True)
        height, width = self.grid.spatial_shape(x)
        step_h, step_w = self.config.stride
        if height % step_h or width % step_w:
            raise ShapeError(
                f"aps_pool: H and W must be divisible by stride={self.config.stride}, got x of shape "
                f"{tuple(x.shape)} (spatial {height}x{width})"
            )
        check_output_faces("aps_pool", self.grid, x, (height // step_h, width // step_w), stride=self.config.stride)
        if self.blur is not None:
            x = self.blur(x)
        # Row a*s + i of the input is row i of component a: a free reshape, no copies.
        split = x.reshape(*x.shape[:-2], height // step_h, step_h, width // step_w, step_w)
        split = split.movedim(-3, 1).movedim(-1, 2)  # (B, s_h, s_w, C, ..., H/s, W/s)
        norms = torch.linalg.vector_norm(split, ord=self.config.p, dim=tuple(range(3, split.dim())))
        phase = norms.flatten(1).argmax(dim=1)
        batch = torch.arange(x.shape[0], device=x.device)
        # Advanced indexing copies only the kept component.
        return split[batch, phase // step_w, phase % step_w], phase

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.polyphase(x)[0]

    def extra_repr(self) -> str:
        cfg = self.config
        return (
            f"{self.in_channels}, stride={cfg.stride}, filter_size={cfg.filter_size}, p={cfg.p}, "
            f"grid={self.grid.name!r}, padding_mode={self.padding_mode!r}"
        )
