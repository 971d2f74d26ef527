r"""Receptive fields on the plane: the layer geometry of a model and the gradient's support.

=====================================  =========================================================
function                               what it gives
=====================================  =========================================================
:func:`layers_of`                      the :class:`~geoconv.sizes.Layer` geometry of a conv/pool stack
:func:`theoretical_receptive_field`    Araujo et al. (Distill 2019), from those layers
:func:`gradient_support`               the input pixels with nonzero :math:`\partial y / \partial x`
=====================================  =========================================================

Every op describes its own geometry: :func:`layers_of` asks each op for
``layers(input_size=None, axis=-1)`` (and ``output_size(input_size)`` where it has one), so a
plugin op that defines that method is measured exactly like a built-in one. torch's own
``Conv2d``, ``MaxPool2d`` and ``AvgPool2d`` are read from their attributes, and spatially
pointwise modules (activations, normalisations, dropout, identity) are skipped.

Examples
--------
>>> import torch
>>> from geoconv import build_op
>>> net = torch.nn.Sequential(build_op("conv", 1, 2), torch.nn.ReLU(), build_op("conv", 2, 1, dilation=2))
>>> theoretical_receptive_field(layers_of(net)).size
7
>>> gradient_support(net, (1, 15, 15), generator=torch.Generator().manual_seed(0)).shape
(7, 7)
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import torch
from torch import nn

from geoconv._checks import check_int
from geoconv.errors import GeoconvError, ParameterError
from geoconv.nn.norm import BatchNorm, GroupNorm, InstanceNorm
from geoconv.ops._common import InputSizeRequired
from geoconv.probes._gradients import centre_gradient, check_index, check_shape, placement, random_inputs
from geoconv.probes.shift import check_model, evaluating
from geoconv.sizes import Layer, ReceptiveField, conv_output_size, pool_output_size, receptive_field

__all__ = [
    "LAYERS_METHOD",
    "Support",
    "gradient_support",
    "layers_of",
    "theoretical_receptive_field",
]

LAYERS_METHOD = "layers(self, input_size=None, axis=-1) -> list[geoconv.sizes.Layer]"
"""The method a module defines to be measured by :func:`layers_of` (every geoconv op has it)."""


# --------------------------------------------------------------------------- layer geometry

# Spatially pointwise modules: no effect on the receptive field. Normalisations count as
# pointwise, as in the receptive-field literature; instance and group norm pool
# statistics over the whole image, so their gradient support is the whole image.
_POINTWISE: tuple[type[nn.Module], ...] = (
    nn.Identity,
    nn.modules.batchnorm._BatchNorm,
    nn.modules.instancenorm._InstanceNorm,
    nn.GroupNorm,
    nn.LayerNorm,
    nn.modules.dropout._DropoutNd,
    nn.Dropout,
    BatchNorm,
    GroupNorm,
    InstanceNorm,
)

# torch's upsampling layers: the Layer arithmetic (integer strides >= 1) has no place for them.
_TORCH_UPSAMPLING: tuple[type[nn.Module], ...] = (nn.ConvTranspose2d, nn.Upsample, nn.MaxUnpool2d)


def _is_pointwise(module: nn.Module) -> bool:
    if isinstance(module, _POINTWISE):
        return True
    # Every activation module torch ships acts pixel by pixel, except attention.
    return type(module).__module__ == "torch.nn.modules.activation" and not isinstance(module, nn.MultiheadAttention)


def _pair(value: Any) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


def _method(module: nn.Module, name: str) -> Callable[..., Any] | None:
    # A bound method, not an attribute that happens to share the name (a submodule called
    # "layers" is callable too).
    attribute = getattr(module, name, None)
    return attribute if inspect.ismethod(attribute) else None


class _Walker:
    """Turn a stack of modules into Layers along one axis, tracking the spatial size when known."""

    def __init__(self, axis: int, spatial: tuple[int, int] | None) -> None:
        self.axis = axis
        self.index = axis + 2
        self.spatial = spatial
        self.layers: list[Layer] = []

    def visit(self, module: nn.Module, path: str) -> None:
        describe = _method(module, "layers")
        if describe is not None:
            self._op(module, describe, path)
        elif isinstance(module, _TORCH_UPSAMPLING):
            raise ParameterError(
                f"layers_of: {path} ({type(module).__name__}) upsamples; the receptive-field arithmetic of "
                "geoconv.sizes.Layer covers convs and pools with integer strides only"
            )
        elif isinstance(module, nn.Conv2d):
            self._torch_conv(module)
        elif isinstance(module, nn.MaxPool2d | nn.AvgPool2d):
            self._torch_pool(module)
        elif _is_pointwise(module):
            return
        else:
            children = list(module.named_children())
            if not children:
                raise ParameterError(
                    f"layers_of: {path} ({type(module).__name__}) has no geometry: it is not a torch conv or pool "
                    f"nor a pointwise layer, and defines no method {LAYERS_METHOD}. A plugin op defines that "
                    "method to be measured (see geoconv.ops.GridOp); otherwise pass the convolutional part of "
                    "the model"
                )
            for name, child in children:
                self.visit(child, f"{path}.{name}")

    def _op(self, module: nn.Module, describe: Callable[..., Any], path: str) -> None:
        """A module that describes itself: its ``layers`` along this axis, then its output size."""
        what = f"layers_of: {path} ({type(module).__name__})"
        layers = self._ask(what, describe, self.axis)
        self.layers.extend(layers)
        if self.spatial is None:
            return
        output_size = _method(module, "output_size")
        if output_size is not None:
            try:
                out = _check_output_pair(what + ".output_size", output_size(self.spatial))
            except GeoconvError as err:
                raise ParameterError(f"{what}: {err}") from err
            self.spatial = out
            return
        # Without output_size, each layer pads as much on the right as on the left.
        sizes = []
        for axis, along in ((-2, self._ask(what, describe, -2)), (-1, self._ask(what, describe, -1))):
            size = self.spatial[axis + 2]
            for layer in along:
                try:
                    size = conv_output_size(size, layer.kernel_size, layer.stride, layer.padding, layer.dilation)
                except GeoconvError as err:
                    raise ParameterError(f"{what}: {err}") from err
            sizes.append(size)
        self.spatial = (sizes[0], sizes[1])

    def _ask(self, what: str, describe: Callable[..., Any], axis: int) -> list[Layer]:
        try:
            layers = describe(self.spatial, axis)
        except InputSizeRequired as err:
            raise ParameterError(f"{what}: {err}; pass input_shape=(H, W) to layers_of") from err
        except GeoconvError as err:
            raise ParameterError(f"{what}: {err}") from err
        if not isinstance(layers, list | tuple) or not all(isinstance(layer, Layer) for layer in layers):
            raise ParameterError(
                f"{what}: its method layers() must return a list of geoconv.sizes.Layer ({LAYERS_METHOD}), "
                f"got {layers!r}"
            )
        return list(layers)

    def _add(
        self,
        kernel: tuple[int, int],
        stride: tuple[int, int],
        padding: tuple[int, int],
        dilation: tuple[int, int],
        out: tuple[int, int] | None,
    ) -> None:
        a = self.index
        self.layers.append(Layer(kernel_size=kernel[a], stride=stride[a], padding=padding[a], dilation=dilation[a]))
        self.spatial = out

    def _torch_conv(self, module: nn.Conv2d) -> None:
        kernel, stride, dilation = _pair(module.kernel_size), _pair(module.stride), _pair(module.dilation)
        if isinstance(module.padding, str):
            padding = (
                (0, 0)
                if module.padding == "valid"
                else tuple(d * (k - 1) // 2 for k, d in zip(kernel, dilation, strict=True))
            )
        else:
            padding = _pair(module.padding)
        out = None
        if self.spatial is not None:
            out = tuple(
                conv_output_size(self.spatial[i], kernel[i], stride[i], padding[i], dilation[i]) for i in range(2)
            )
        self._add(kernel, stride, padding, dilation, out)  # type: ignore[arg-type]

    def _torch_pool(self, module: nn.MaxPool2d | nn.AvgPool2d) -> None:
        kernel, stride, padding = (_pair(v) for v in (module.kernel_size, module.stride, module.padding))
        dilation = _pair(module.dilation) if isinstance(module, nn.MaxPool2d) else (1, 1)
        out = None
        if self.spatial is not None:
            out = tuple(
                pool_output_size(self.spatial[i], kernel[i], stride[i], padding[i], dilation[i], module.ceil_mode)
                for i in range(2)
            )
        self._add(kernel, stride, padding, dilation, out)  # type: ignore[arg-type]


def _check_output_pair(name: str, value: object) -> tuple[int, int]:
    """``value`` as a pair of ints >= 1 (an op's ``output_size``), else a ``ParameterError`` naming ``name``."""
    if not isinstance(value, Sequence) or isinstance(value, str) or len(value) != 2:
        raise ParameterError(f"{name} must return a pair (H, W) of ints, got {value!r}")
    return check_int(f"{name}[0]", value[0], minimum=1), check_int(f"{name}[1]", value[1], minimum=1)


def layers_of(model: nn.Module, input_shape: Sequence[int] | None = None, *, axis: int = -1) -> list[Layer]:
    r"""Read the receptive-field geometry of a sequential stack of convs and pools.

    Walks ``model``'s submodules depth-first in registration order, which is the order
    of the forward pass for ``nn.Sequential`` and for geoconv's blocks, and turns each
    layer into a :class:`~geoconv.sizes.Layer` (kernel size, stride, left/top padding,
    dilation) along one axis:

    - a module with a method ``layers(input_size=None, axis=-1)`` (every geoconv op,
      and any plugin op that defines it) gives its own layers; its method
      ``output_size(input_size)``, if it has one, gives the size the next layer sees
      (without it, each of its layers is taken to pad as much on the right as on the
      left). A ``GeoconvError`` from ``layers`` (an upsampling, a non-local op) is
      passed on, naming the module's path;
    - ``torch.nn.Conv2d``, ``MaxPool2d`` and ``AvgPool2d`` are read from their
      attributes; ``ConvTranspose2d``, ``Upsample`` and ``MaxUnpool2d`` upsample, and raise;
    - spatially pointwise modules (activations, dropout, identity, normalisations) are
      skipped. Instance and group norm pool statistics over the image: the Layer
      arithmetic ignores that, as the receptive-field literature does, but the gradient
      support of such a model is the whole image;
    - any other module is a container: its children are walked. One with no children is
      an error naming the method it lacks.

    Parameters
    ----------
    model : torch.nn.Module
        A sequential stack (no branches: parallel children would be read as a chain).
    input_shape : (H, W), optional
        The spatial input size; needed only for "same" padding with a stride above 1
        (whose split depends on the size). ``(C, H, W)`` and ``(B, C, H, W)`` also work.
    axis : int
        ``-2`` (rows) or ``-1`` (columns).

    Returns
    -------
    list of geoconv.sizes.Layer
        From input to output.

    Raises
    ------
    GeoconvError
        For a module without geometry (named by its path, with the method
        ``layers(self, input_size=None, axis=-1) -> list[geoconv.sizes.Layer]`` it would
        need), an upsampling or non-local layer, or a missing ``input_shape`` where it is needed.

    Examples
    --------
    >>> import torch
    >>> from geoconv import build_op
    >>> net = torch.nn.Sequential(build_op("conv", 3, 8, stride=2), build_op("max_pool", 8, kernel_size=3, stride=2))
    >>> layers_of(net, (32, 32))
    [Layer(kernel_size=3, stride=2, padding=0, dilation=1), Layer(kernel_size=3, stride=2, padding=0, dilation=1)]
    """
    if not isinstance(model, nn.Module):
        raise ParameterError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if axis not in (-2, -1) or isinstance(axis, bool):
        raise ParameterError(f"axis must be -2 (rows) or -1 (columns), got {axis!r}")
    spatial = None
    if input_shape is not None:
        shape = check_shape("input_shape", input_shape, (2, 3, 4))
        spatial = (shape[-2], shape[-1])
    walker = _Walker(axis, spatial)
    walker.visit(model, type(model).__name__)
    if not walker.layers:
        raise ParameterError(f"layers_of: {type(model).__name__} holds no conv or pool layer")
    return walker.layers


def theoretical_receptive_field(layers: Sequence[Layer]) -> ReceptiveField:
    r"""The receptive field of a layer stack: :func:`geoconv.sizes.receptive_field`.

    .. math::

        r_0 = 1 + \sum_{l} d_l (k_l - 1) \prod_{i<l} s_i

    Examples
    --------
    >>> from geoconv.sizes import Layer
    >>> theoretical_receptive_field([Layer(3, padding=1)] * 3).size
    7
    """
    return receptive_field(layers)


# --------------------------------------------------------------------------- gradient support


class Support(NamedTuple):
    """Inclusive bounds of the input pixels an output depends on; unpacks as ``rows, cols``.

    Attributes
    ----------
    rows, cols : (int, int)
        First and last row, first and last column.
    """

    rows: tuple[int, int]
    cols: tuple[int, int]

    @property
    def shape(self) -> tuple[int, int]:
        """``(height, width)`` of the bounding box."""
        return self.rows[1] - self.rows[0] + 1, self.cols[1] - self.cols[0] + 1


def gradient_support(
    model: nn.Module,
    input_shape: Sequence[int],
    *,
    output_index: tuple[int, int] | None = None,
    inputs: int = 16,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> Support:
    r"""Bounding box of the input pixels with :math:`\partial y_{ij} / \partial x \ne 0`.

    :math:`y_{ij} = \sum_c y_c(i, j)` is one output pixel, summed over channels. A
    single input can hide support: a ReLU that is off or a max pool that picks another
    tap gives an exactly zero gradient. The support is therefore the union over
    ``inputs`` standard-normal inputs (one batch, eval mode, so the samples do not
    interact); with generic weights it equals the theoretical receptive field
    (:func:`theoretical_receptive_field`), clipped to the image.

    Parameters
    ----------
    model : torch.nn.Module
        ``(B, C, H, W) -> (B, C', H', W')``; runs in eval mode (restored afterwards).
    input_shape : (C, H, W)
        The shape of one input.
    output_index : (int, int), optional
        The output pixel; the centre ``(H' // 2, W' // 2)`` by default.
    inputs : int
        Random inputs, >= 1.
    generator : torch.Generator, optional
        Source of the inputs.
    device, dtype : optional
        Those of the model's parameters by default.

    Returns
    -------
    Support
        Inclusive row and column bounds in input coordinates.

    Raises
    ------
    GeoconvError
        For a bad shape or index, or a gradient that is zero everywhere.

    Examples
    --------
    >>> import torch
    >>> from geoconv import build_op
    >>> net = torch.nn.Sequential(build_op("conv", 1, 2, kernel_size=5), build_op("conv", 2, 1, stride=2))
    >>> gradient_support(net, (1, 16, 16), generator=torch.Generator().manual_seed(0))
    Support(rows=(6, 12), cols=(6, 12))

    The centre output (4, 4) of the 8x8 output starts at :math:`4 S_0 - P_0 = 8 - 2` and
    spans :math:`r_0 = 1 + 4 + 2 \cdot 1 = 7` pixels, as
    ``theoretical_receptive_field(layers_of(net, (16, 16))).bounds(4)`` says.
    """
    model = check_model(model)
    shape = check_shape("input_shape", input_shape)
    inputs = check_int("inputs", inputs, minimum=1)
    output_index = check_index(output_index)
    device, dtype = placement(model, device, dtype)
    x = random_inputs((inputs, *shape), generator, device, dtype)
    with evaluating(model):
        grad = centre_gradient(model, x, output_index)
    mask = grad.abs().sum(dim=(0, 1)) > 0
    if not bool(mask.any()):
        raise ParameterError(
            "the gradient of the output pixel is zero for every input: the model ignores its input there "
            "(dead ReLUs, zero weights?); try more inputs or another output_index"
        )
    rows = mask.any(dim=1).nonzero().flatten()
    cols = mask.any(dim=0).nonzero().flatten()
    r0, r1, c0, c1 = torch.stack([rows[0], rows[-1], cols[0], cols[-1]]).tolist()
    return Support(rows=(r0, r1), cols=(c0, c1))
