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
:func:`erf_sweep`                      ERF radius of a stack of any op against depth, kernel size,
                                       dilation or stride
:func:`loglog_slope`                   the growth exponent of such a curve
=====================================  =========================================================

The theoretical receptive field bounds what an output can see; the gradient support is
what it does see for a given model (equal for generic weights); the effective receptive
field is how strongly it sees it, which for a stack of :math:`n` layers concentrates like a
Gaussian of standard deviation :math:`\propto \sqrt n` (the central limit theorem applied to
the :math:`n`-fold convolution of the kernels).

Every op describes its own geometry with a method
``layers(self, input_size=None, axis=-1) -> list[geoconv.sizes.Layer]``, which
:func:`layers_of` reads: a plugin op that defines it is measured like a built-in one.

This module gathers the probes of :mod:`geoconv.probes.receptive_field` (layer geometry,
gradient support) and :mod:`geoconv.probes.erf` (effective receptive fields, sweeps).

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

from geoconv.probes.erf import (
    ERF_SWEEP_PARAMETERS,
    effective_receptive_field,
    erf_std,
    erf_sweep,
    loglog_slope,
    sweep_params,
    uniform_erf_variance,
)
from geoconv.probes.receptive_field import (
    LAYERS_METHOD,
    Support,
    gradient_support,
    layers_of,
    theoretical_receptive_field,
)

__all__ = [
    "ERF_SWEEP_PARAMETERS",
    "LAYERS_METHOD",
    "Support",
    "effective_receptive_field",
    "erf_std",
    "erf_sweep",
    "gradient_support",
    "layers_of",
    "loglog_slope",
    "sweep_params",
    "theoretical_receptive_field",
    "uniform_erf_variance",
]
