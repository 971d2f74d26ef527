r"""Locality on the plane: theoretical, gradient and effective receptive fields.

=====================================  =========================================================
probe                                  what it gives
=====================================  =========================================================
:func:`layers_of`                      the :class:`~geoconv.sizes.Layer` geometry of a conv/pool stack
:func:`theoretical_receptive_field`    Araujo et al. (Distill 2019), from those layers
:func:`gradient_support`               the input pixels with nonzero :math:`\partial y / \partial x`
:func:`effective_receptive_field`      Luo et al. (NeurIPS 2016): :math:`|\partial y_c / \partial x|`
                                       averaged over inputs and initialisations
:func:`erf_std`                        the radius (standard deviation) of an ERF map
:func:`uniform_erf_variance`           its closed form for a linear stack of uniform kernels
:func:`erf_sweep`                      ERF radius against depth, kernel size, dilation or stride
:func:`loglog_slope`                   the growth exponent of such a curve
=====================================  =========================================================

The theoretical receptive field bounds what an output can see; the gradient support is
what it does see for a given model (equal for generic weights); the effective receptive
field is how strongly it sees it, which for a stack of :math:`n` layers concentrates like a
Gaussian of standard deviation :math:`\propto \sqrt n` (the central limit theorem applied to
the :math:`n`-fold convolution of the kernels).

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

import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import torch
from torch import nn

from geoconv._checks import check_choice, check_int, check_tensor
from geoconv.errors import ParameterError, ShapeError
from geoconv.nn.norm import BatchNorm, GroupNorm, InstanceNorm
from geoconv.ops.activations import make_activation
from geoconv.ops.antialias import APSPool, BlurPool
from geoconv.ops.conv import Conv, ConvTranspose
from geoconv.ops.pool import AvgPool, MaxPool, MaxUnpool
from geoconv.ops.registry import build_op
from geoconv.ops.resample import Resample
from geoconv.probes.shift import check_model, evaluating
from geoconv.sizes import Layer, ReceptiveField, conv_output_size, pool_output_size, receptive_field, same_padding

__all__ = [
    "ERF_SWEEP_PARAMETERS",
    "Support",
    "effective_receptive_field",
    "erf_std",
    "erf_sweep",
    "gradient_support",
    "layers_of",
    "loglog_slope",
    "theoretical_receptive_field",
    "uniform_erf_variance",
]

ERF_SWEEP_PARAMETERS: tuple[str, ...] = ("depth", "kernel_size", "dilation", "stride")
"""The layer-stack parameters :func:`erf_sweep` can vary."""


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

# Layers that upsample or resample: the Layer arithmetic (integer strides >= 1) has no
# place for them.
_UNSUPPORTED: tuple[type[nn.Module], ...] = (ConvTranspose, MaxUnpool, Resample, nn.ConvTranspose2d, nn.Upsample)


def _is_pointwise(module: nn.Module) -> bool:
    if isinstance(module, _POINTWISE):
        return True
    # Every activation module torch ships acts pixel by pixel, except attention.
    return type(module).__module__ == "torch.nn.modules.activation" and not isinstance(module, nn.MultiheadAttention)


def _pair(value: Any) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


class _Walker:
    """Turn a stack of modules into Layers along one axis, tracking the spatial size when known."""

    def __init__(self, axis: int, spatial: tuple[int, int] | None) -> None:
        self.axis = axis
        self.index = axis + 2
        self.spatial = spatial
        self.layers: list[Layer] = []

    def _size(self, what: str) -> int:
        if self.spatial is None:
            raise ParameterError(
                f"{what} has 'same' padding with a stride > 1, whose padding depends on the input size; "
                "pass input_shape=(H, W)"
            )
        return self.spatial[self.index]

    def _add(self, kernel: int, stride: int, padding: int, dilation: int, out: tuple[int, int] | None) -> None:
        self.layers.append(Layer(kernel_size=kernel, stride=stride, padding=padding, dilation=dilation))
        self.spatial = out

    def _same(self, what: str, kernel: int, stride: int, dilation: int) -> int:
        # At stride 1 "same" pads d(k - 1) in total whatever the size; the size matters only beyond.
        size = self._size(what) if stride > 1 else 1
        return same_padding(size, kernel, stride, dilation)[0]

    def visit(self, module: nn.Module, path: str) -> None:
        if isinstance(module, _UNSUPPORTED):
            raise ParameterError(
                f"layers_of: {path} ({type(module).__name__}) upsamples or resamples; the receptive-field "
                "arithmetic of geoconv.sizes.Layer covers convs and pools with integer strides only"
            )
        if isinstance(module, Conv):
            cfg = module.config
            a = self.index
            if self.spatial is not None:
                top, _, left, _ = module.padding_widths(self.spatial)
                out = module.output_shape(self.spatial)
            elif cfg.padding == "same":
                if max(cfg.stride) > 1:
                    self._size(path)
                top, left = (same_padding(1, k, 1, d)[0] for k, d in zip(cfg.kernel_size, cfg.dilation, strict=True))
                out = None
            else:
                top, _, left, _ = (0, 0, 0, 0) if cfg.padding == "valid" else cfg.padding
                out = None
            self._add(cfg.kernel_size[a], cfg.stride[a], (top, left)[a], cfg.dilation[a], out)
        elif isinstance(module, MaxPool | AvgPool):
            cfg = module.config
            a = self.index
            dilation = cfg.dilation if isinstance(module, MaxPool) else (1, 1)
            out = None
            if self.spatial is not None:
                out = tuple(
                    pool_output_size(
                        self.spatial[i], cfg.kernel_size[i], cfg.stride[i], cfg.padding[i], dilation[i], cfg.ceil_mode
                    )
                    for i in range(2)
                )
            self._add(cfg.kernel_size[a], cfg.stride[a], cfg.padding[a], dilation[a], out)  # type: ignore[arg-type]
        elif isinstance(module, BlurPool):
            stride = module.stride[self.index]
            padding = self._same(path, module.filter_size, stride, 1)
            out = None if self.spatial is None else tuple(-(-self.spatial[i] // module.stride[i]) for i in range(2))
            self._add(module.filter_size, stride, padding, 1, out)  # type: ignore[arg-type]
        elif isinstance(module, APSPool):
            cfg = module.config
            if cfg.filter_size > 1:
                self._add(cfg.filter_size, 1, (cfg.filter_size - 1) // 2, 1, self.spatial)
            # The kept polyphase component depends on the input; component 0 is the reference.
            out = None if self.spatial is None else tuple(self.spatial[i] // cfg.stride[i] for i in range(2))
            self._add(1, cfg.stride[self.index], 0, 1, out)  # type: ignore[arg-type]
        elif isinstance(module, nn.Conv2d):
            self._torch_conv(module, path)
        elif isinstance(module, nn.MaxPool2d | nn.AvgPool2d):
            kernel, stride, padding = (_pair(v) for v in (module.kernel_size, module.stride, module.padding))
            dilation = _pair(module.dilation) if isinstance(module, nn.MaxPool2d) else (1, 1)
            out = None
            if self.spatial is not None:
                out = tuple(
                    pool_output_size(self.spatial[i], kernel[i], stride[i], padding[i], dilation[i], module.ceil_mode)
                    for i in range(2)
                )
            a = self.index
            self._add(kernel[a], stride[a], padding[a], dilation[a], out)  # type: ignore[arg-type]
        elif _is_pointwise(module):
            return
        else:
            children = list(module.named_children())
            if not children:
                raise ParameterError(
                    f"layers_of: {path} ({type(module).__name__}) is not a conv, a pool or a pointwise layer; "
                    "pass the convolutional part of the model (a stack of geoconv or torch convs and pools)"
                )
            for name, child in children:
                self.visit(child, f"{path}.{name}")

    def _torch_conv(self, module: nn.Conv2d, path: str) -> None:
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
        a = self.index
        self._add(kernel[a], stride[a], padding[a], dilation[a], out)  # type: ignore[arg-type]


def layers_of(model: nn.Module, input_shape: Sequence[int] | None = None, *, axis: int = -1) -> list[Layer]:
    r"""Read the receptive-field geometry of a sequential stack of convs and pools.

    Walks ``model``'s submodules depth-first in registration order, which is the order
    of the forward pass for ``nn.Sequential`` and for geoconv's blocks, and turns each
    layer into a :class:`~geoconv.sizes.Layer` (kernel size, stride, left/top padding,
    dilation) along one axis:

    - geoconv ``conv`` (and ``gated_conv``, through its inner conv), ``max_pool``,
      ``avg_pool``, ``blur_pool`` (binomial taps + stride), ``aps_pool`` (its blur, then
      a 1-tap layer of its stride: the polyphase component it keeps depends on the
      input; component 0 is the reference);
    - ``torch.nn.Conv2d``, ``MaxPool2d`` and ``AvgPool2d``;
    - spatially pointwise modules (activations, dropout, identity, normalisations) are
      skipped. Instance and group norm pool statistics over the image: the Layer
      arithmetic ignores that, as the receptive-field literature does, but the gradient
      support of such a model is the whole image.

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
        For a module that is not a conv, pool or pointwise layer (named by its path),
        an upsampling layer, or a missing ``input_shape`` where it is needed.

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
    if axis not in (-2, -1):
        raise ParameterError(f"axis must be -2 (rows) or -1 (columns), got {axis!r}")
    spatial = None
    if input_shape is not None:
        shape = _check_shape("input_shape", input_shape, (2, 3, 4))
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


def _check_shape(name: str, shape: object, lengths: tuple[int, ...] = (3,)) -> tuple[int, ...]:
    if isinstance(shape, torch.Size):
        shape = tuple(shape)
    if not isinstance(shape, Sequence) or isinstance(shape, str) or len(shape) not in lengths:
        expected = " or ".join(f"{n} integers" for n in lengths)
        raise ParameterError(f"{name} must be a sequence of {expected} (e.g. (C, H, W)), got {shape!r}")
    return tuple(check_int(f"{name}[{i}]", v, minimum=1) for i, v in enumerate(shape))


def _placement(model: object, device: torch.device | str | None, dtype: torch.dtype | None) -> tuple[Any, Any]:
    tensors = [*model.parameters(), *model.buffers()] if isinstance(model, nn.Module) else []
    floating = [t for t in tensors if t.is_floating_point()]
    if device is None:
        device = tensors[0].device if tensors else torch.device("cpu")
    if dtype is None:
        dtype = floating[0].dtype if floating else torch.get_default_dtype()
    return torch.device(device), dtype


def _random_inputs(
    shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    if generator is None:
        return torch.randn(shape, device=device, dtype=dtype)
    return torch.randn(shape, generator=generator, device=generator.device, dtype=dtype).to(device)


def _centre_gradient(
    model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, output_index: tuple[int, int] | None
) -> torch.Tensor:
    """``∂(Σ_c y[b, c, i, j]) / ∂x`` for each sample ``b``, shape of ``x``."""
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        y = model(x)
        if not isinstance(y, torch.Tensor) or y.dim() != 4:
            shape = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
            raise ShapeError(f"the model must return a feature map (B, C', H', W'), got {shape}")
        if output_index is None:
            i, j = y.shape[-2] // 2, y.shape[-1] // 2
        else:
            i, j = output_index
            if not (0 <= i < y.shape[-2] and 0 <= j < y.shape[-1]):
                raise ShapeError(
                    f"output_index={output_index} lies outside the output map of shape {tuple(y.shape[-2:])}"
                )
        # Samples do not interact in eval mode, so one backward pass gives every per-sample gradient.
        (grad,) = torch.autograd.grad(y[:, :, i, j].sum(), x)
    return grad


def _check_index(output_index: object) -> tuple[int, int] | None:
    if output_index is None:
        return None
    if not isinstance(output_index, Sequence) or isinstance(output_index, str) or len(output_index) != 2:
        raise ParameterError(f"output_index must be a pair (row, col) of the output map, got {output_index!r}")
    return check_int("output_index[0]", output_index[0]), check_int("output_index[1]", output_index[1])


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
    shape = _check_shape("input_shape", input_shape)
    inputs = check_int("inputs", inputs, minimum=1)
    output_index = _check_index(output_index)
    device, dtype = _placement(model, device, dtype)
    x = _random_inputs((inputs, *shape), generator, device, dtype)
    with evaluating(model):
        grad = _centre_gradient(model, x, output_index)
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


# --------------------------------------------------------------------------- effective receptive field


def _seeded(seed: int, device: torch.device) -> Any:
    devices = [device.index or 0] if device.type == "cuda" else []
    return torch.random.fork_rng(devices=devices)


def effective_receptive_field(
    make_model: Callable[[int], nn.Module],
    input_shape: Sequence[int],
    *,
    inputs: int = 8,
    inits: int = 4,
    output_index: tuple[int, int] | None = None,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    r"""Effective receptive field (Luo, Li, Urtasun & Zemel, NeurIPS 2016).

    A gradient of 1 is placed at the centre pixel of *every* output channel (0
    elsewhere) and backpropagated to the input; the map is the absolute input gradient
    summed over input channels, averaged over random inputs and initialisations:

    .. math::

        \mathrm{ERF}(u, v) = \mathbb{E}_{\theta, x} \sum_{c} \left|
            \frac{\partial \sum_{k} y_k(i_0, j_0)}{\partial x_c(u, v)} \right| .

    Parameters
    ----------
    make_model : callable
        ``make_model(seed) -> nn.Module``, a freshly initialised model. It is called with
        the global RNG seeded by ``seed`` (and restored afterwards), so factories that
        rely on torch's default initialisation need no seeding of their own.
    input_shape : (C, H, W)
        The shape of one input.
    inputs : int
        Standard-normal inputs per initialisation (one batch).
    inits : int
        Initialisations; seeds ``0 .. inits - 1`` without a generator, else drawn from it.
    output_index : (int, int), optional
        The output pixel; ``(H' // 2, W' // 2)`` by default.
    generator : torch.Generator, optional
        Source of the inputs and the seeds (the global RNG for the inputs without one).
    device : torch.device or str, optional
        Where to run; the model's own device by default.
    dtype : torch.dtype, optional
        The inputs' dtype; the model's by default.

    Returns
    -------
    torch.Tensor
        ``(H, W)``, non-negative, on the model's device.

    Examples
    --------
    >>> import torch
    >>> from geoconv import build_op
    >>> erf = effective_receptive_field(lambda seed: build_op("conv", 1, 4), (1, 9, 9), inits=2)
    >>> erf.shape, int((erf > 0).sum())
    (torch.Size([9, 9]), 9)
    """
    if not callable(make_model):
        raise ParameterError(f"make_model must be a callable seed -> nn.Module, got {type(make_model).__name__}")
    shape = _check_shape("input_shape", input_shape)
    inputs = check_int("inputs", inputs, minimum=1)
    inits = check_int("inits", inits, minimum=1)
    output_index = _check_index(output_index)
    if generator is None:
        seeds = list(range(inits))
    else:
        seeds = torch.randint(2**62, (inits,), generator=generator, device=generator.device).tolist()
    total: torch.Tensor | None = None
    noise: torch.Tensor | None = None
    for k, seed in enumerate(seeds):
        target = torch.device(device) if device is not None else torch.device("cpu")
        with _seeded(seed, target):
            torch.manual_seed(seed)
            model = make_model(seed)
        if not isinstance(model, nn.Module):
            raise ParameterError(f"make_model({seed}) must return a torch.nn.Module, got {type(model).__name__}")
        if device is not None:
            model = model.to(device)
        run_device, run_dtype = _placement(model, device, dtype)
        if noise is None:
            # Every input for every initialisation at once: one transfer to the device.
            noise = _random_inputs((inits, inputs, *shape), generator, run_device, run_dtype)
        with evaluating(model):
            grad = _centre_gradient(model, noise[k], output_index)
        erf = grad.abs().sum(dim=1).mean(dim=0)
        total = erf if total is None else total + erf
    assert total is not None
    return total / inits


def erf_std(erf_map: torch.Tensor, *, axis: int | None = None) -> float:
    r"""The radius of an ERF map: the standard deviation of it as a distribution.

    With :math:`p = m / \sum m` and its centre of mass :math:`(c_i, c_j)`,

    .. math::

        \sigma_i^2 = \sum_{i,j} p(i, j)\,(i - c_i)^2, \qquad
        \sigma_j^2 = \sum_{i,j} p(i, j)\,(j - c_j)^2, \qquad
        \sigma = \sqrt{(\sigma_i^2 + \sigma_j^2) / 2},

    the per-axis standard deviation of an isotropic map (the RMS radius over
    :math:`\sqrt 2`).

    Parameters
    ----------
    erf_map : torch.Tensor
        ``(H, W)``, non-negative, not all zero.
    axis : int, optional
        ``None`` for :math:`\sigma`, ``-2`` for :math:`\sigma_i` (rows), ``-1`` for
        :math:`\sigma_j` (columns).

    Returns
    -------
    float
        In pixels.

    Examples
    --------
    Uniform on 3 taps along each axis: variance :math:`(3^2 - 1)/12 = 2/3`.

    >>> import torch
    >>> round(erf_std(torch.ones(3, 3)) ** 2, 6)
    0.666667
    """
    erf_map = check_tensor(erf_map, ndim=2, name="erf_map", layout="(H, W)", floating=True)
    if axis not in (None, -2, -1):
        raise ParameterError(f"axis must be None, -2 (rows) or -1 (columns), got {axis!r}")
    # One small map: float64 on the CPU is exact enough everywhere and exists everywhere.
    m = erf_map.detach().to("cpu", torch.float64)
    total = m.sum()
    if not bool(torch.isfinite(m).all()) or bool((m < 0).any()) or not bool(total > 0):
        raise ParameterError("erf_map must be finite and non-negative with a positive sum")
    p = m / total
    rows = torch.arange(m.shape[0], dtype=torch.float64, device=m.device)
    cols = torch.arange(m.shape[1], dtype=torch.float64, device=m.device)
    p_rows, p_cols = p.sum(dim=1), p.sum(dim=0)
    var_rows = (p_rows * (rows - (p_rows * rows).sum()).square()).sum()
    var_cols = (p_cols * (cols - (p_cols * cols).sum()).square()).sum()
    variance = {None: (var_rows + var_cols) / 2, -2: var_rows, -1: var_cols}[axis]
    return float(variance.sqrt())


def loglog_slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    r"""Least-squares slope of :math:`\log y` against :math:`\log x`: the exponent :math:`a` in :math:`y \propto x^a`.

    Parameters
    ----------
    xs, ys : sequence of float
        Positive, of equal length >= 2, ``xs`` not all equal.

    Examples
    --------
    >>> round(loglog_slope([1, 2, 4, 8], [1.0, 1.41421356, 2.0, 2.82842712]), 6)
    0.5
    """
    xs_t = torch.as_tensor(list(xs) if not isinstance(xs, torch.Tensor) else xs, dtype=torch.float64).flatten()
    ys_t = torch.as_tensor(list(ys) if not isinstance(ys, torch.Tensor) else ys, dtype=torch.float64).flatten()
    if xs_t.numel() != ys_t.numel() or xs_t.numel() < 2:
        raise ParameterError(f"xs and ys must have the same length >= 2, got {xs_t.numel()} and {ys_t.numel()}")
    if not bool((xs_t > 0).all() and (ys_t > 0).all()):
        raise ParameterError("xs and ys must be positive for a log-log fit")
    lx, ly = xs_t.log(), ys_t.log()
    centred = lx - lx.mean()
    denominator = centred.square().sum()
    if not bool(denominator > 0):
        raise ParameterError("xs must not all be equal")
    return float((centred * (ly - ly.mean())).sum() / denominator)


# --------------------------------------------------------------------------- sweeps


def uniform_erf_variance(layers: Sequence[Layer]) -> float:
    r"""Per-axis ERF variance of a linear stack whose kernels are uniform (all taps equal).

    Backpropagating a unit gradient through such a stack spreads it like the sum of
    independent offsets :math:`S_{l-1} d_l U_l`, with :math:`U_l` uniform on the
    :math:`k_l` taps :math:`\{-(k_l-1)/2, \dots, (k_l-1)/2\}` (variance
    :math:`(k_l^2 - 1)/12`) and :math:`S_{l-1} = \prod_{i<l} s_i`, so

    .. math::

        \sigma^2 = \sum_l \bigl(d_l S_{l-1}\bigr)^2 \frac{k_l^2 - 1}{12} ;

    for :math:`n` equal stride-1 layers, :math:`n(k^2 - 1)/12`: the radius grows like
    :math:`\sqrt n`. Exact while the receptive field stays inside the image.

    Examples
    --------
    >>> from geoconv.sizes import Layer
    >>> uniform_erf_variance([Layer(3)] * 6)
    4.0
    """
    if len(layers) == 0:
        raise ParameterError("layers must contain at least one Layer, got an empty sequence")
    # Integers until the final division, so that e.g. 6 layers of 3 taps give exactly 4.0.
    twelfths, scale = 0, 1
    for index, layer in enumerate(layers):
        if not isinstance(layer, Layer):
            raise ParameterError(f"layers[{index}] must be a geoconv.sizes.Layer, got {type(layer).__name__}")
        twelfths += (layer.dilation * scale) ** 2 * (layer.kernel_size**2 - 1)
        scale *= layer.stride
    return twelfths / 12


def _stack(
    depth: int,
    kernel_size: int,
    dilation: int,
    stride: int,
    channels: int,
    activation: str,
    weights: str,
    padding_mode: str,
) -> nn.Sequential:
    layers: list[nn.Module] = []
    for index in range(depth):
        conv = build_op(
            "conv",
            1 if index == 0 else channels,
            channels,
            kernel_size=kernel_size,
            stride=stride,
            dilation=dilation,
            padding_mode=padding_mode,
            bias=False,
        )
        if weights == "uniform":
            with torch.no_grad():
                conv.weight.fill_(1.0 / conv.weight[0].numel())
        layers.append(conv)
        if index < depth - 1:
            layers.append(make_activation(activation))
    return nn.Sequential(*layers)


def erf_sweep(
    parameter: str,
    values: Sequence[int],
    *,
    depth: int = 4,
    kernel_size: int = 3,
    dilation: int = 1,
    stride: int = 1,
    channels: int = 4,
    activation: str = "relu",
    weights: str = "random",
    padding_mode: str = "zeros",
    input_size: int | None = None,
    inputs: int = 8,
    inits: int = 4,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> dict[str, list[float]]:
    r"""ERF radius of a plain conv stack as one geometry parameter varies.

    The stack is ``depth`` geoconv ``conv`` layers (``kernel_size``, ``stride``,
    ``dilation`` in every layer, "same" padding, no bias, ``channels`` channels after a
    1-channel input) with ``activation`` between them; ``parameter`` takes each of
    ``values`` in turn and the others stay fixed. ``weights="uniform"`` sets every tap
    to :math:`1 / \text{fan-in}` (with ``activation="identity"`` the ERF is then exactly
    the :func:`uniform_erf_variance` distribution); ``"random"`` keeps torch's default
    initialisation, averaged over ``inits`` seeds.

    The input is square, by default the smallest size :math:`2 r_0 + 2 S_0 + 1` that keeps
    the centre output's receptive field off the border, so the padding never enters
    the measurement.

    Parameters
    ----------
    parameter : str
        ``depth``, ``kernel_size``, ``dilation`` or ``stride``.
    values : sequence of int
        The values it takes, each >= 1.
    depth, kernel_size, dilation, stride, channels : int
        The fixed geometry.
    activation : str
        A name in :data:`geoconv.ops.activations.ACTIVATIONS` (``identity`` for a linear stack).
    weights : str
        ``random`` or ``uniform``.
    padding_mode : str
        The convs' padding mode.
    input_size : int, optional
        Input side; the default above when ``None``.
    inputs, inits, generator, device
        As in :func:`effective_receptive_field`.

    Returns
    -------
    dict of str to list
        ``value`` (the parameter's values), ``std`` (:func:`erf_std`, pixels),
        ``rf_size`` (theoretical receptive field :math:`r_0`) and ``uniform_std`` (the
        closed form :math:`\sqrt{\sigma^2}` of :func:`uniform_erf_variance` for the same
        geometry), one entry per value.

    Examples
    --------
    >>> sweep = erf_sweep("depth", [1, 4], activation="identity", weights="uniform", inits=1, inputs=1)
    >>> [round(s, 6) for s in sweep["std"]], [round(s, 6) for s in sweep["uniform_std"]]
    ([0.816497, 1.632993], [0.816497, 1.632993])
    """
    parameter = check_choice("parameter", parameter, ERF_SWEEP_PARAMETERS)
    weights = check_choice("weights", weights, ("random", "uniform"))
    if isinstance(values, int) or not isinstance(values, Sequence) or len(values) == 0:
        raise ParameterError(f"values must be a non-empty sequence of integers, got {values!r}")
    values = [check_int(f"values[{i}]", v, minimum=1) for i, v in enumerate(values)]
    geometry = {
        "depth": check_int("depth", depth, minimum=1),
        "kernel_size": check_int("kernel_size", kernel_size, minimum=1),
        "dilation": check_int("dilation", dilation, minimum=1),
        "stride": check_int("stride", stride, minimum=1),
    }
    channels = check_int("channels", channels, minimum=1)
    make_activation(activation)
    if input_size is not None:
        input_size = check_int("input_size", input_size, minimum=1)
    result: dict[str, list[float]] = {"value": [], "std": [], "rf_size": [], "uniform_std": []}
    for value in values:
        config = {**geometry, parameter: value}

        def make(seed: int, config: dict[str, int] = config) -> nn.Module:
            return _stack(
                channels=channels, activation=activation, weights=weights, padding_mode=padding_mode, **config
            )

        # Size and stride of the receptive field do not depend on the padding, which (for
        # "same" padding with strides) needs the input size this is to choose.
        rf = receptive_field([Layer(config["kernel_size"], config["stride"], 0, config["dilation"])] * config["depth"])
        size = input_size if input_size is not None else 2 * rf.size + 2 * rf.stride + 1
        layers = layers_of(make(0), (size, size))
        erf = effective_receptive_field(
            make, (1, size, size), inputs=inputs, inits=inits, generator=generator, device=device
        )
        result["value"].append(float(value))
        result["std"].append(erf_std(erf))
        result["rf_size"].append(float(receptive_field(layers).size))
        result["uniform_std"].append(math.sqrt(uniform_erf_variance(layers)))
    return result
