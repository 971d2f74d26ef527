"""geoconv: convolution operators on the plane and on the sphere, behind one registry.

>>> import geoconv
>>> conv = geoconv.build_op("conv", 3, 16, kernel_size=3, stride=2)
>>> "conv" in geoconv.list_ops()
True
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from geoconv import errors, grids, sizes
from geoconv.errors import GeoconvError
from geoconv.ops.registry import build_op, get_op, list_ops, register_op

if TYPE_CHECKING:
    from geoconv.training.runs import load_run

__version__ = "0.1.0"

__all__ = [
    "GeoconvError",
    "__version__",
    "build_op",
    "errors",
    "get_op",
    "grids",
    "list_ops",
    "load_run",
    "register_op",
    "sizes",
]


def __getattr__(name: str) -> Any:
    # load_run lives with training; importing it lazily keeps `import geoconv` free of Lightning.
    if name == "load_run":
        from geoconv.training.runs import load_run

        return load_run
    raise AttributeError(f"module 'geoconv' has no attribute {name!r}")
