r"""Size arithmetic for convolutions, transposed convolutions, pooling and layer stacks.

Plain functions on integers, no tensors: what a conv does to a size, how much
TensorFlow-style "same" padding a layer needs, and the theoretical receptive field of a
stack of layers (Araujo, Norris & Sim, "Computing Receptive Fields of Convolutional
Neural Networks", Distill 2019).

The seed's formula for the output size, :math:`(x - k + 2p)/s + 1`, generalises with a
dilation :math:`d` (the kernel then spans :math:`d(k - 1) + 1` pixels) and with padding
:math:`p_0, p_1` before and after:

.. math::

    y = \left\lfloor \frac{x + p_0 + p_1 - d(k - 1) - 1}{s} \right\rfloor + 1 .

Examples
--------
>>> conv_output_size(32, kernel_size=3, stride=2, padding=1)
16
>>> same_padding(8, kernel_size=3, stride=2)
(0, 1)
>>> receptive_field([Layer(3), Layer(3, stride=2), Layer(3)]).size
9
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from geoconv._checks import check_int
from geoconv.errors import ParameterError

__all__ = [
    "Layer",
    "ReceptiveField",
    "conv_output_size",
    "conv_transpose_output_size",
    "pool_output_size",
    "same_padding",
    "effective_kernel_size",
    "receptive_field",
]


def _padding_pair(padding: int | Sequence[int], name: str = "padding") -> tuple[int, int]:
    if isinstance(padding, int) and not isinstance(padding, bool):
        p = check_int(name, padding, minimum=0)
        return p, p
    if isinstance(padding, Sequence) and not isinstance(padding, str) and len(padding) == 2:
        return check_int(f"{name}[0]", padding[0], minimum=0), check_int(f"{name}[1]", padding[1], minimum=0)
    raise ParameterError(f"{name} must be an int or a pair (before, after) of ints >= 0, got {padding!r}")


def effective_kernel_size(kernel_size: int, dilation: int = 1) -> int:
    """The span of a dilated kernel, :math:`d(k - 1) + 1`.

    >>> effective_kernel_size(3, dilation=2)
    5
    """
    kernel_size = check_int("kernel_size", kernel_size, minimum=1)
    dilation = check_int("dilation", dilation, minimum=1)
    return dilation * (kernel_size - 1) + 1


def conv_output_size(
    size: int,
    kernel_size: int,
    stride: int = 1,
    padding: int | Sequence[int] = 0,
    dilation: int = 1,
) -> int:
    r"""Output size of a convolution along one dimension.

    Parameters
    ----------
    size : int
        Input size :math:`x`.
    kernel_size, stride, dilation : int
        :math:`k`, :math:`s`, :math:`d`.
    padding : int or (int, int)
        Padding on each side, or ``(before, after)``.

    Returns
    -------
    int
        :math:`\lfloor (x + p_0 + p_1 - d(k-1) - 1)/s \rfloor + 1`.

    Raises
    ------
    ParameterError
        If the padded input is smaller than the dilated kernel.
    """
    size = check_int("size", size, minimum=1)
    stride = check_int("stride", stride, minimum=1)
    span = effective_kernel_size(kernel_size, dilation)
    before, after = _padding_pair(padding)
    padded = size + before + after
    if padded < span:
        raise ParameterError(
            f"the kernel spans {span} pixels (kernel_size={kernel_size}, dilation={dilation}) but the "
            f"padded input has only {padded} (size={size}, padding={(before, after)})"
        )
    return (padded - span) // stride + 1


def pool_output_size(
    size: int,
    kernel_size: int,
    stride: int | None = None,
    padding: int = 0,
    dilation: int = 1,
    ceil_mode: bool = False,
) -> int:
    """Output size of max/avg pooling along one dimension, as torch computes it.

    With ``ceil_mode`` the division rounds up, except that a last window starting in
    the right padding is dropped (torch's rule).

    >>> pool_output_size(5, 2), pool_output_size(5, 2, ceil_mode=True)
    (2, 3)
    """
    stride = kernel_size if stride is None else stride
    if not ceil_mode:
        return conv_output_size(size, kernel_size, stride, padding, dilation)
    span = effective_kernel_size(kernel_size, dilation)
    stride = check_int("stride", stride, minimum=1)
    padding = check_int("padding", padding, minimum=0)
    out = math.ceil((size + 2 * padding - span) / stride) + 1
    if (out - 1) * stride >= size + padding:
        out -= 1
    if out < 1:
        raise ParameterError(f"pooling window of span {span} does not fit input size {size} with padding {padding}")
    return out


def conv_transpose_output_size(
    size: int,
    kernel_size: int,
    stride: int = 1,
    padding: int = 0,
    dilation: int = 1,
    output_padding: int = 0,
) -> int:
    r"""Output size of a transposed convolution along one dimension.

    .. math::

        y = (x - 1)s - 2p + d(k - 1) + p_{out} + 1

    which inverts :func:`conv_output_size` for the input sizes that map to ``size``
    (``output_padding`` picks which, and must be smaller than the stride or the dilation).

    >>> conv_transpose_output_size(16, kernel_size=3, stride=2, padding=1, output_padding=1)
    32
    """
    size = check_int("size", size, minimum=1)
    stride = check_int("stride", stride, minimum=1)
    dilation = check_int("dilation", dilation, minimum=1)
    padding = check_int("padding", padding, minimum=0)
    output_padding = check_int("output_padding", output_padding, minimum=0)
    if output_padding >= max(stride, dilation):
        raise ParameterError(
            f"output_padding must be smaller than stride or dilation (max {max(stride, dilation) - 1}), "
            f"got {output_padding}"
        )
    out = (size - 1) * stride - 2 * padding + effective_kernel_size(kernel_size, dilation) + output_padding
    if out < 1:
        raise ParameterError(f"transposed conv output size would be {out} < 1; reduce padding={padding}")
    return out


def same_padding(size: int, kernel_size: int, stride: int = 1, dilation: int = 1) -> tuple[int, int]:
    r"""TensorFlow's "SAME" padding ``(before, after)`` along one dimension.

    The output has :math:`\lceil x / s \rceil` pixels; the total padding is

    .. math::

        p = \max\bigl((\lceil x/s \rceil - 1)s + d(k - 1) + 1 - x,\ 0\bigr)

    split as ``before = p // 2`` and ``after = p - before``: the odd extra pixel goes on
    the bottom/right.

    >>> same_padding(7, kernel_size=4)
    (1, 2)
    >>> same_padding(8, kernel_size=1, stride=2)
    (0, 0)
    """
    size = check_int("size", size, minimum=1)
    stride = check_int("stride", stride, minimum=1)
    span = effective_kernel_size(kernel_size, dilation)
    out = -(-size // stride)
    total = max((out - 1) * stride + span - size, 0)
    return total // 2, total - total // 2


@dataclass(frozen=True)
class Layer:
    """The geometry of one layer for receptive-field arithmetic.

    Parameters
    ----------
    kernel_size : int
        :math:`k`.
    stride : int
        :math:`s`.
    padding : int
        Padding :math:`p` on the left/top (the side that shifts the output's origin).
    dilation : int
        :math:`d`; the layer acts like a kernel of size :math:`d(k-1)+1`.
    """

    kernel_size: int
    stride: int = 1
    padding: int = 0
    dilation: int = 1

    def __post_init__(self) -> None:
        check_int("kernel_size", self.kernel_size, minimum=1)
        check_int("stride", self.stride, minimum=1)
        check_int("padding", self.padding, minimum=0)
        check_int("dilation", self.dilation, minimum=1)


@dataclass(frozen=True)
class ReceptiveField:
    """The receptive field of a stack of layers (Araujo et al., Distill 2019).

    Attributes
    ----------
    size : int
        :math:`r_0`, the number of input pixels that can influence one output pixel.
    stride : int
        :math:`S_0 = \\prod_l s_l`, the input distance between neighbouring outputs.
    padding : int
        :math:`P_0 = \\sum_l p_l \\prod_{i<l} s_i`, the effective left padding.
    start : int
        Input coordinate of the first pixel in output 0's receptive field, :math:`-P_0`.
    """

    size: int
    stride: int
    padding: int
    start: int

    def centre(self, index: int = 0) -> float:
        """Input coordinate of the centre of output ``index``'s receptive field.

        .. math:: c_j = -P_0 + (r_0 - 1)/2 + j S_0
        """
        return self.start + (self.size - 1) / 2 + index * self.stride

    def bounds(self, index: int = 0) -> tuple[int, int]:
        """First and last input coordinate (inclusive) seen by output ``index``."""
        first = self.start + index * self.stride
        return first, first + self.size - 1


def receptive_field(layers: Sequence[Layer]) -> ReceptiveField:
    r"""Receptive field, effective stride and padding of a stack of layers.

    .. math::

        r_0 = 1 + \sum_{l=1}^{L} d_l (k_l - 1) \prod_{i<l} s_i ,\qquad
        S_0 = \prod_{l=1}^{L} s_l ,\qquad
        P_0 = \sum_{l=1}^{L} p_l \prod_{i<l} s_i .

    Parameters
    ----------
    layers : sequence of Layer
        From input to output.

    Examples
    --------
    Two 3x3 convs with padding 1 see 5x5, centred on the pixel itself:

    >>> rf = receptive_field([Layer(3, padding=1), Layer(3, padding=1)])
    >>> rf.size, rf.stride, rf.centre(0)
    (5, 1, 0.0)
    """
    if len(layers) == 0:
        raise ParameterError("layers must contain at least one Layer, got an empty sequence")
    size, stride, padding = 1, 1, 0
    for index, layer in enumerate(layers):
        if not isinstance(layer, Layer):
            raise ParameterError(f"layers[{index}] must be a geoconv.sizes.Layer, got {type(layer).__name__}")
        size += layer.dilation * (layer.kernel_size - 1) * stride
        padding += layer.padding * stride
        stride *= layer.stride
    return ReceptiveField(size=size, stride=stride, padding=padding, start=-padding)
