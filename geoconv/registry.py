"""The op registry's public names (re-exported from :mod:`geoconv.ops.registry`).

Importing this module imports :mod:`geoconv.ops`, so the built-in ops are registered.
"""

from geoconv.ops.registry import (
    ENTRY_POINT_GROUP,
    EVERY_GRID,
    OPS,
    OpSpec,
    Parameter,
    PluginWarning,
    build_op,
    get_op,
    list_ops,
    load_plugins,
    register_op,
    unregister_op,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "EVERY_GRID",
    "OPS",
    "OpSpec",
    "Parameter",
    "PluginWarning",
    "build_op",
    "get_op",
    "list_ops",
    "load_plugins",
    "register_op",
    "unregister_op",
]
