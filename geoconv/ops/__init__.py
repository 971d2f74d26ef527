"""The registered operators. Importing this package registers the built-in ops.

==================  =========================================================
op                  what it does
==================  =========================================================
``conv``            convolution; stride, dilation, groups, "same"/"valid", every padding mode
``conv_transpose``  transposed convolution (the adjoint of ``conv``)
``gated_conv``      gated convolution, Yu et al. 2019
``neighbour_conv``  HEALPix 9-tap neighbour convolution, NNhealpix (Krachmalnicoff & Tomasi 2019)
``cheb_conv``       HEALPix Chebyshev graph convolution, DeepSphere (Defferrard et al. 2020)
``spectral_conv``   equirect spherical-harmonic convolution, isotropic filters: SO(3)-equivariant (e3nn grid)
``s2_conv``         equirect → SO(3) correlation, localised non-isotropic filters, Cohen et al. 2018 (s2cnn)
``so3_conv``        SO(3) → SO(3) correlation on the SOFT grid ``(B, C, 2b, 2b, 2b)``, Cohen et al. 2018
``so3_integrate``   Haar integral over SO(3): rotation-invariant ``(B, C)`` features
``disco_conv``      equirect DISCO convolution, torch-harmonics adapter; only when torch-harmonics is installed
``sphere_conv``     equirect SphereNet convolution: kernels on each pixel's tangent plane, Coors et al. 2018
``max_pool``        max pooling; optionally returns the positions of the maxima
``avg_pool``        average pooling
``max_unpool``      writes each value back where its maximum came from (switch variables)
``upsample``        bilinear/nearest/bicubic upsampling by a factor or to a size
``downsample``      bilinear/nearest/bicubic/area downsampling by a factor or to a size
``blur_pool``       binomial blur then subsampling, Zhang 2019
``aps_pool``        adaptive polyphase sampling, Chaman & Dokmanić 2021
==================  =========================================================

Pooling-type ops (every op from ``max_pool`` on) keep the channel count.

``conv``, ``gated_conv`` and ``conv_transpose`` on the sphere run torch's zero-padded conv
plus a border correction from the halo strips, or pad every face first; ``conv_path(name)``
(``name`` in ``CONV_PATHS``: ``"auto"``, ``"padded"``, ``"halo"``) picks one in a ``with``
block, and ``"auto"`` applies the rule documented in :mod:`geoconv.ops._halo`.

Every op describes its own geometry: ``op.layers(input_size=None, axis=-1)`` is the list
of :class:`geoconv.sizes.Layer` (kernel, stride, dilation, left/top padding) of the planar
layers it applies, which :func:`geoconv.probes.locality.layers_of` reads; ops that upsample,
resample or are not local raise a ``GeoconvError`` saying why. See
:class:`geoconv.ops.GridOp`.
"""

from geoconv.ops import disco  # noqa: F401  (registers disco_conv when torch-harmonics is importable)
from geoconv.ops._common import GridOp
from geoconv.ops._halo import CONV_PATHS, conv_path
from geoconv.ops.activations import ACTIVATIONS, make_activation
from geoconv.ops.antialias import APSPool, APSPoolConfig, BlurPool, BlurPoolConfig, binomial_filter
from geoconv.ops.cheb import ChebConv, ChebConvConfig
from geoconv.ops.conv import (
    Conv,
    ConvConfig,
    ConvTranspose,
    ConvTransposeConfig,
    GatedConv,
    GatedConvConfig,
)
from geoconv.ops.neighbour import NeighbourConv, NeighbourConvConfig
from geoconv.ops.pool import AvgPool, AvgPoolConfig, MaxPool, MaxPoolConfig
from geoconv.ops.resample import Downsample, DownsampleConfig, Upsample, UpsampleConfig
from geoconv.ops.so3 import (
    SO3_FAMILY,
    S2Conv,
    S2ConvConfig,
    SO3Conv,
    SO3ConvConfig,
    SO3Integrate,
    SO3IntegrateConfig,
)
from geoconv.ops.spectral import SpectralConv, SpectralConvConfig
from geoconv.ops.spectral_pool import SpectralPool, SpectralPoolConfig  # noqa: F401  (registers spectral_pool)
from geoconv.ops.spherenet import SphereConv, SphereConvConfig
from geoconv.ops.unpool import MaxUnpool, MaxUnpoolConfig

__all__ = [
    "CONV_PATHS",
    "GridOp",
    "conv_path",
    "SpectralConv",
    "SpectralConvConfig",
    "SphereConv",
    "SphereConvConfig",
    "S2Conv",
    "S2ConvConfig",
    "SO3Conv",
    "SO3ConvConfig",
    "SO3Integrate",
    "SO3IntegrateConfig",
    "SO3_FAMILY",
    "ACTIVATIONS",
    "make_activation",
    "Conv",
    "ConvConfig",
    "ConvTranspose",
    "ConvTransposeConfig",
    "GatedConv",
    "GatedConvConfig",
    "NeighbourConv",
    "NeighbourConvConfig",
    "ChebConv",
    "ChebConvConfig",
    "MaxPool",
    "MaxPoolConfig",
    "AvgPool",
    "AvgPoolConfig",
    "MaxUnpool",
    "MaxUnpoolConfig",
    "Upsample",
    "UpsampleConfig",
    "Downsample",
    "DownsampleConfig",
    "BlurPool",
    "BlurPoolConfig",
    "binomial_filter",
    "APSPool",
    "APSPoolConfig",
]
