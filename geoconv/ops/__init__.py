"""The registered operators. Importing this package registers the built-in ops.

=================  =========================================================
op                 what it does
=================  =========================================================
``conv``           convolution; stride, dilation, groups, "same"/"valid", every padding mode
``conv_transpose`` transposed convolution (the adjoint of ``conv``)
``gated_conv``     gated convolution, Yu et al. 2019
=================  =========================================================
"""

from geoconv.ops.activations import ACTIVATIONS, make_activation
from geoconv.ops.conv import (
    Conv,
    ConvConfig,
    ConvTranspose,
    ConvTransposeConfig,
    GatedConv,
    GatedConvConfig,
)

__all__ = [
    "ACTIVATIONS",
    "make_activation",
    "Conv",
    "ConvConfig",
    "ConvTranspose",
    "ConvTransposeConfig",
    "GatedConv",
    "GatedConvConfig",
]
