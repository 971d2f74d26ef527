"""Blocks and layers assembled from op names; they work on every grid's layout.

==================  =========================================================
name                what it is
==================  =========================================================
``EncoderBlock``    conv (stride 2), norm or pooling, activation
``DecoderBlock``    upsample or transposed conv, [skip,] conv, norm, activation
``ClassicBlock``    conv, act, conv, act, max/avg pool
``Head``            the last conv, with an optional sigmoid
``UNet``            encoder–decoder with skips at every scale, from one op name
``make_norm``       batch / group / instance / none over ``(B, C, *spatial)`` (area-weighted on the sphere)
``GlobalMeanPool``  the quadrature-weighted mean over the grid: ``(B, C, *spatial) -> (B, C)``
``PlainCNN``        strided convs, flatten, linear (Cohen et al. 2018's planar baseline)
``S2CNN``           s2_conv, so3_conv ..., so3_integrate, linear (Cohen et al. 2018)
==================  =========================================================

>>> import torch
>>> from geoconv.nn import EncoderBlock, Head
>>> net = torch.nn.Sequential(EncoderBlock(3, 8), Head(8, 2))
>>> net(torch.randn(1, 3, 16, 16)).shape
torch.Size([1, 2, 8, 8])
"""

from geoconv.nn.blocks import ClassicBlock, DecoderBlock, EncoderBlock, Head
from geoconv.nn.norm import NORMS, BatchNorm, GroupNorm, InstanceNorm, make_norm
from geoconv.nn.pooling import GlobalMeanPool
from geoconv.nn.reference import S2CNN, PlainCNN
from geoconv.nn.unet import UNet

__all__ = [
    "NORMS",
    "BatchNorm",
    "ClassicBlock",
    "DecoderBlock",
    "EncoderBlock",
    "GlobalMeanPool",
    "GroupNorm",
    "Head",
    "InstanceNorm",
    "PlainCNN",
    "S2CNN",
    "UNet",
    "make_norm",
]
