r"""Effective receptive fields on the plane (Luo et al., NeurIPS 2016) and how they grow.

=====================================  =========================================================
function                               what it gives
=====================================  =========================================================
:func:`effective_receptive_field`      :math:`|\partial y_c / \partial x|` averaged over inputs and
                                       initialisations
:func:`erf_std`                        the radius (standard deviation) of an ERF map
:func:`uniform_erf_variance`           its closed form for a linear stack of uniform kernels
:func:`erf_sweep`                      ERF radius of a stack of any op against depth, kernel size,
                                       dilation or stride
:func:`loglog_slope`                   the growth exponent of such a curve
=====================================  =========================================================

For a stack of :math:`n` layers the ERF concentrates like a Gaussian of standard deviation
:math:`\propto \sqrt n` (the central limit theorem applied to the :math:`n`-fold convolution
of the kernels).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from geoconv._checks import check_choice, check_int, check_tensor
from geoconv.errors import ParameterError
from geoconv.nn.models import OpStack
from geoconv.ops.activations import make_activation
from geoconv.ops.registry import get_op
from geoconv.probes._gradients import centre_gradient, check_index, check_shape, placement, random_inputs
from geoconv.probes.receptive_field import layers_of
from geoconv.probes.shift import evaluating
from geoconv.sizes import Layer, receptive_field

__all__ = [
    "ERF_SWEEP_PARAMETERS",
    "effective_receptive_field",
    "erf_std",
    "erf_sweep",
    "loglog_slope",
    "sweep_params",
    "uniform_erf_variance",
]

ERF_SWEEP_PARAMETERS: tuple[str, ...] = ("depth", "kernel_size", "dilation", "stride")
"""The layer-stack parameters :func:`erf_sweep` can vary."""


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
    shape = check_shape("input_shape", input_shape)
    inputs = check_int("inputs", inputs, minimum=1)
    inits = check_int("inits", inits, minimum=1)
    output_index = check_index(output_index)
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
        run_device, run_dtype = placement(model, device, dtype)
        if noise is None:
            # Every input for every initialisation at once: one transfer to the device.
            noise = random_inputs((inits, inputs, *shape), generator, run_device, run_dtype)
        with evaluating(model):
            grad = centre_gradient(model, noise[k], output_index)
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


def sweep_params(
    op: str, parameter: str, geometry: Mapping[str, int], params: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The parameters of each layer of an :func:`erf_sweep` stack of ``op``.

    ``params`` (the op's own settings), then the sweep's ``kernel_size``, ``dilation`` and
    ``stride`` where the op has them, and ``bias=False`` where it has one. A fixed geometry
    key the op does not have is left to the op (``blur_pool`` has a ``filter_size``, not a
    ``kernel_size``); sweeping one is an error.

    >>> sweep_params("blur_pool", "depth", {"kernel_size": 3, "dilation": 1, "stride": 1}, {"filter_size": 5})
    {'filter_size': 5, 'stride': 1}
    """
    fields = [p.name for p in get_op(op).parameters()]
    if parameter != "depth" and parameter not in fields:
        raise ParameterError(
            f"erf_sweep over {parameter!r}: op {op!r} has no parameter {parameter!r}; its parameters are "
            + ", ".join(fields)
        )
    layer = dict(params or {})
    layer.update({key: value for key, value in geometry.items() if key != "depth" and key in fields})
    if "bias" in fields:
        layer["bias"] = False  # a linear stack, as the uniform-kernel theory has it
    return layer


def _uniform(stack: nn.Sequential) -> None:
    """Every weight of >= 2 dims of every layer: all taps 1 / fan-in (the theory's kernels)."""
    with torch.no_grad():
        for parameter in stack.parameters():
            if parameter.dim() >= 2:
                parameter.fill_(1.0 / parameter[0].numel())


def erf_sweep(
    parameter: str,
    values: Sequence[int],
    *,
    op: str = "conv",
    params: Mapping[str, Any] | None = None,
    depth: int = 4,
    kernel_size: int = 3,
    dilation: int = 1,
    stride: int = 1,
    channels: int = 4,
    activation: str = "relu",
    weights: str = "random",
    padding_mode: str | None = None,
    input_size: int | None = None,
    inputs: int = 8,
    inits: int = 4,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> dict[str, list[float]]:
    r"""ERF radius of a stack of one op as one geometry parameter varies.

    The stack is ``depth`` layers of ``op`` on the plane (:class:`geoconv.nn.OpStack`:
    ``channels`` channels after a 1-channel input, or 1 throughout for a pooling-type op)
    with ``activation`` between them. Each layer takes ``params`` (the op's own
    parameters), then ``kernel_size``, ``stride`` and ``dilation`` where the op has them
    (a fixed one it lacks is left to the op; sweeping one it lacks is an error), no bias,
    and ``padding_mode`` where given. ``parameter`` takes each of ``values`` in turn and
    the others stay fixed. ``weights="uniform"`` sets every tap of every weight to
    :math:`1 / \text{fan-in}` (with ``activation="identity"`` and a conv the ERF is then
    exactly the :func:`uniform_erf_variance` distribution); ``"random"`` keeps the op's
    initialisation, averaged over ``inits`` seeds.

    The input is square, by default the smallest size :math:`2 r_0 + 2 S_0 + 1` that keeps
    the centre output's receptive field off the border (read off the built stack with
    :func:`~geoconv.probes.locality.layers_of`), so the padding never enters the measurement.

    Parameters
    ----------
    parameter : str
        ``depth``, ``kernel_size``, ``dilation`` or ``stride``.
    values : sequence of int
        The values it takes, each >= 1.
    op : str
        A registered op that runs on the plane and describes its layers.
    params : mapping, optional
        The op's other parameters (its config fields), e.g. ``{"activation": "relu"}`` for
        ``gated_conv`` or ``{"filter_size": 5}`` for ``blur_pool``.
    depth, kernel_size, dilation, stride, channels : int
        The fixed geometry.
    activation : str
        A name in :data:`geoconv.ops.activations.ACTIVATIONS` (``identity`` for a linear stack).
    weights : str
        ``random`` or ``uniform``.
    padding_mode : str, optional
        A model-wide padding mode (:meth:`geoconv.ops.registry.OpSpec.with_padding_mode`);
        ``None`` keeps the op's own.
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
        layers), one entry per value.

    Examples
    --------
    >>> sweep = erf_sweep("depth", [1, 4], activation="identity", weights="uniform", inits=1, inputs=1)
    >>> [round(s, 6) for s in sweep["std"]], [round(s, 6) for s in sweep["uniform_std"]]
    ([0.816497, 1.632993], [0.816497, 1.632993])

    A binomial blur ``[1, 2, 1] / 4`` has variance 1/2 per layer, where a uniform 3-tap kernel has 2/3:

    >>> blur = erf_sweep("depth", [2], op="blur_pool", activation="identity", inits=1, inputs=1)
    >>> round(blur["std"][0] ** 2, 6), round(blur["uniform_std"][0] ** 2, 6)
    (1.0, 1.333333)
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
        layer_params = sweep_params(op, parameter, config, params)

        def make(seed: int, depth: int = config["depth"], layer_params: dict[str, Any] = layer_params) -> nn.Module:
            stack = OpStack(op, 1, channels, depth, "planar", layer_params, padding_mode, activation)
            if weights == "uniform":
                _uniform(stack)
            return stack

        model = make(0)
        size = input_size
        if size is None:
            # The receptive field's size and stride do not depend on the padding, which (for
            # "same" padding with strides) needs the input size this is to choose: any size
            # that every layer fits will do, such as that of the nominal geometry.
            nominal = receptive_field(
                [Layer(config["kernel_size"], config["stride"], 0, config["dilation"])] * config["depth"]
            )
            rf = receptive_field(layers_of(model, (2 * nominal.size + 2 * nominal.stride + 1,) * 2))
            size = 2 * rf.size + 2 * rf.stride + 1
        layers = layers_of(model, (size, size))
        erf = effective_receptive_field(
            make, (1, size, size), inputs=inputs, inits=inits, generator=generator, device=device
        )
        result["value"].append(float(value))
        result["std"].append(erf_std(erf))
        result["rf_size"].append(float(receptive_field(layers).size))
        result["uniform_std"].append(math.sqrt(uniform_erf_variance(layers)))
    return result
