"""geoconv: convolution operators on the plane and on the sphere, behind one registry.

>>> import geoconv
>>> conv = geoconv.build_op("conv", 3, 16, kernel_size=3, stride=2)
>>> "conv" in geoconv.list_ops()
True
"""

from geoconv import errors, grids, sizes
from geoconv.errors import GeoconvError
from geoconv.ops.registry import build_op, get_op, list_ops, register_op

__version__ = "0.1.0"

__all__ = [
    "GeoconvError",
    "__version__",
    "build_op",
    "errors",
    "get_op",
    "grids",
    "list_ops",
    "register_op",
    "sizes",
]
