"""The operator registry: one dict of :class:`OpSpec`, a decorator, and entry-point plugins.

An op is a ``torch.nn.Module`` factory registered under a name, with the grids it
supports and a dataclass that is its config schema. ``build_op`` validates the
parameters against that schema (unknown keys, wrong types and bad values all raise
:class:`~geoconv.errors.GeoconvError` with suggestions) before anything is built.

Third-party packages add ops through the entry-point group ``geoconv.ops``. Each entry
point names a module (importing it registers its ops) or a callable taking no
arguments. Plugins load once, lazily, the first time the registry is read; a plugin that
fails to load gives a :class:`PluginWarning` naming it and the rest keep working.

A plugin is code the user installed, and loading it runs that code, exactly as
``import`` would. Configs never name code: ops are built by registry name only.

Examples
--------
>>> from dataclasses import dataclass
>>> import torch
>>> from geoconv.ops.registry import register_op, build_op, unregister_op
>>> @dataclass
... class ScaleConfig:
...     factor: float = 2.0
>>> @register_op("scale_demo", grids=("planar",), config=ScaleConfig, same_channels=True)
... class Scale(torch.nn.Module):
...     '''Multiply by a constant factor.'''
...     def __init__(self, in_channels, out_channels, grid="planar", config=ScaleConfig()):
...         super().__init__()
...         self.factor = config.factor
...     def forward(self, x):
...         return self.factor * x
>>> build_op("scale_demo", 3, factor=3)(torch.ones(1, 3, 2, 2)).sum().item()
36.0
>>> unregister_op("scale_demo").name
'scale_demo'
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
from torch import nn

from geoconv._checks import check_int, coerce, type_name
from geoconv._registry import PluginWarning, Registry, check_entry_name
from geoconv.errors import ParameterError, UnknownNameError, unknown_name
from geoconv.grids import BUILTIN_GRIDS, get_grid, list_grids

__all__ = [
    "ENTRY_POINT_GROUP",
    "EVERY_GRID",
    "OPS",
    "OpSpec",
    "Parameter",
    "PluginWarning",
    "register_op",
    "unregister_op",
    "get_op",
    "list_ops",
    "build_op",
    "declare_missing_extra",
    "load_plugins",
]

ENTRY_POINT_GROUP = "geoconv.ops"
"""The entry-point group third-party packages declare their ops under."""

EVERY_GRID = "*"
"""``grids=EVERY_GRID``: the op is written once against the grid interface and runs on every
registered grid, plugin grids included."""

Factory = TypeVar("Factory", bound=Callable[..., nn.Module])


@dataclass(frozen=True)
class Parameter:
    """One field of an op's config schema, as shown by ``geoconv ops``."""

    name: str
    type: str
    default: Any
    required: bool

    def __str__(self) -> str:
        return f"{self.name}" if self.required else f"{self.name}={self.default!r}"


def _default_apply(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return module(x)


@dataclass(frozen=True)
class OpSpec:
    """Everything the registry knows about one op.

    Attributes
    ----------
    name : str
        The registry name (``"conv"``).
    factory : callable
        ``factory(in_channels, out_channels, grid=grid, config=config) -> nn.Module``.
    grids : tuple of str
        The grids the op supports: the names it was registered with, or every registered
        grid (plugins included) for an op registered with ``grids=EVERY_GRID``.
    config : type
        A dataclass; its fields are the op's parameters, with types and defaults.
    doc : str
        The op's documentation; its first line is the summary.
    same_channels : bool
        Pooling-type op: ``out_channels`` must equal ``in_channels`` (or be left out).
    apply : callable
        ``apply(module, x)`` runs the module on one tensor in the grid's layout. Most ops
        are simply ``module(x)``; an op with other inputs (``max_unpool`` needs indices)
        builds them here, so contract tests and benchmarks can drive every op alike.
    source : str
        ``"geoconv"`` or the distribution that registered the op.
    """

    name: str
    factory: Callable[..., nn.Module]
    declared_grids: tuple[str, ...] | str
    config: type
    doc: str
    same_channels: bool = False
    apply: Callable[[nn.Module, torch.Tensor], torch.Tensor] = _default_apply
    source: str = "geoconv"

    @property
    def every_grid(self) -> bool:
        """True for an op written once against the grid interface (it runs on every grid)."""
        return self.declared_grids == EVERY_GRID

    @property
    def grids(self) -> tuple[str, ...]:
        """The grids the op supports, resolved against the grid registry now."""
        if self.every_grid:
            # The built-in grids in their usual order, then plugin grids by name.
            names = list_grids()
            return tuple(g for g in BUILTIN_GRIDS if g in names) + tuple(g for g in names if g not in BUILTIN_GRIDS)
        return tuple(self.declared_grids)

    @property
    def summary(self) -> str:
        """The first line of :attr:`doc`."""
        lines = [line.strip() for line in self.doc.strip().splitlines()]
        return lines[0] if lines else ""

    @property
    def padded(self) -> bool:
        """Whether the op pads (its config has a ``padding_mode``): what a model-wide ``padding_mode`` applies to.

        >>> get_op("conv").padded, get_op("spectral_conv").padded
        (True, False)
        """
        return "padding_mode" in {p.name for p in self.parameters()}

    def parameters(self) -> tuple[Parameter, ...]:
        """The config schema as :class:`Parameter` rows, in field order."""
        hints = typing.get_type_hints(self.config)
        rows = []
        for field in dataclasses.fields(self.config):
            if not field.init:
                continue
            if field.default is not dataclasses.MISSING:
                default, required = field.default, False
            elif field.default_factory is not dataclasses.MISSING:
                default, required = field.default_factory(), False
            else:
                default, required = None, True
            rows.append(Parameter(field.name, type_name(hints.get(field.name, Any)), default, required))
        return tuple(rows)

    def make_config(self, **params: Any) -> Any:
        """Validate ``params`` against the schema and return a config instance.

        Raises
        ------
        UnknownNameError
            For a key that is not a field, with the closest field names.
        ParameterError
            For a value of the wrong type or out of range, or a missing required field.
        """
        hints = typing.get_type_hints(self.config)
        fields = {f.name: f for f in dataclasses.fields(self.config) if f.init}
        values = {}
        for key, value in params.items():
            if key not in fields:
                raise unknown_name(f"parameter of op {self.name!r}", key, fields)
            values[key] = coerce(f"{self.name}.{key}", value, hints.get(key, Any))
        missing = [p.name for p in self.parameters() if p.required and p.name not in values]
        if missing:
            raise ParameterError(f"op {self.name!r} needs parameter(s) {', '.join(missing)}; none given")
        return self.config(**values)

    def with_padding_mode(self, params: Mapping[str, Any] | None, padding_mode: str | None) -> dict[str, Any]:
        """``params`` with a model-wide ``padding_mode`` applied: the one rule every model and config follows.

        - ``padding_mode=None`` is neutral: ``params`` as they are (the op's own setting, or
          the grid's default padding);
        - for an op with a ``padding_mode`` parameter it overrides the op's own setting;
        - for an op without padding (``spectral_conv``, ``cheb_conv``, ...) it is an error,
          not something to ignore: the ablation it asks for would not happen.

        Parameters
        ----------
        params : mapping, optional
            The op's parameters (config fields).
        padding_mode : str, optional
            The model-wide (config-level) padding mode.

        Returns
        -------
        dict
            A new dict; ``params`` is not modified.

        Raises
        ------
        ParameterError
            For a ``padding_mode`` given to an op without padding.

        Examples
        --------
        >>> get_op("conv").with_padding_mode({"padding_mode": "reflect"}, "circular")
        {'padding_mode': 'circular'}
        >>> get_op("cheb_conv").with_padding_mode({"K": 2}, None)
        {'K': 2}
        """
        merged = dict(params or {})
        if padding_mode is None:
            return merged
        if not self.padded:
            raise ParameterError(
                f"padding_mode={padding_mode!r} is set, but op {self.name!r} has no padding; "
                "leave padding_mode unset for it"
            )
        merged["padding_mode"] = padding_mode
        return merged

    def check_grid(self, grid: str) -> str:
        """Return ``grid`` if this op supports it, else raise with the supported grids."""
        get_grid(grid)  # an unknown grid name: did-you-mean over every registered grid
        if grid not in self.grids:
            raise UnknownNameError(
                f"op {self.name!r} does not support grid {grid!r}; it supports "
                + ", ".join(repr(g) for g in self.grids)
                + ". Ops for this grid: "
                + (", ".join(repr(n) for n in list_ops(grid=grid)) or "none yet"),
                kind="grid",
                name=grid,
                choices=self.grids,
            )
        return grid

    def build(
        self, in_channels: int, out_channels: int | None = None, grid: str = "planar", **params: Any
    ) -> nn.Module:
        """Validate everything, then build the module; see :func:`build_op`."""
        in_channels = check_int("in_channels", in_channels, minimum=1)
        if out_channels is None:
            out_channels = in_channels
        out_channels = check_int("out_channels", out_channels, minimum=1)
        if self.same_channels and out_channels != in_channels:
            raise ParameterError(
                f"op {self.name!r} keeps the channel count: out_channels must equal in_channels "
                f"({in_channels}) or be left out, got out_channels={out_channels}"
            )
        self.check_grid(grid)
        config = self.make_config(**params)
        return self.factory(in_channels, out_channels, grid=grid, config=config)


def _same_definition(old: OpSpec, new: OpSpec) -> bool:
    # A module imported twice (importlib.reload, or pytest's doctest collection importing a
    # file under its own name) re-registers the same definition; that replaces nothing.
    factories = [getattr(spec, "factory", None) for spec in (old, new)]
    names = [(getattr(f, "__module__", None), getattr(f, "__qualname__", None)) for f in factories]
    return names[0][1] is not None and names[0] == names[1]


OPS: Registry[OpSpec] = Registry("op", ENTRY_POINT_GROUP, same=_same_definition)
"""Op name -> :class:`OpSpec`; read it through :func:`get_op` and :func:`list_ops`."""


def register_op(
    name: str,
    *,
    grids: tuple[str, ...] | list[str] | str = ("planar",),
    config: type,
    doc: str | None = None,
    same_channels: bool = False,
    apply: Callable[[nn.Module, torch.Tensor], torch.Tensor] | None = None,
    override: bool = False,
) -> Callable[[Factory], Factory]:
    """Register a module factory (usually an ``nn.Module`` class) as an op.

    Parameters
    ----------
    name : str
        The registry name.
    grids : sequence of str, or EVERY_GRID
        The registered grids the op supports (``planar``, ``equirect``, ...), or
        :data:`EVERY_GRID` for an op that runs on every grid, plugin grids included.
    config : type
        A dataclass whose fields are the op's parameters (typed, with defaults).
    doc : str, optional
        Documentation; defaults to the factory's docstring.
    same_channels : bool
        True for pooling-type ops that keep the channel count.
    apply : callable, optional
        How to run the module on one tensor; see :attr:`OpSpec.apply`.
    override : bool
        Replace an existing op of the same name. Without it a duplicate name raises
        :class:`~geoconv.errors.RegistryError`.

    Returns
    -------
    callable
        A decorator that registers its argument and returns it unchanged.
    """
    check_entry_name("op", name)
    if not dataclasses.is_dataclass(config) or not isinstance(config, type):
        raise ParameterError(f"config for op {name!r} must be a dataclass type, got {config!r}")
    if grids != EVERY_GRID:
        grids = tuple(grids)
        if not grids:
            raise ParameterError(
                f"grids for op {name!r} must name at least one grid of {list_grids()}, or be EVERY_GRID"
            )
        known = list_grids()
        for grid in grids:
            if grid not in known:
                raise unknown_name(f"grid for op {name!r}", grid, known)

    def decorator(factory: Factory) -> Factory:
        if not callable(factory):
            raise ParameterError(f"register_op({name!r}) must decorate a callable, got {factory!r}")
        spec = OpSpec(
            name=name,
            factory=factory,
            declared_grids=grids,
            config=config,
            doc=doc if doc is not None else (factory.__doc__ or ""),
            same_channels=same_channels,
            apply=apply or _default_apply,
            source=OPS._current_source,
        )
        OPS.register(name, spec, override=override)
        return factory

    return decorator


def unregister_op(name: str) -> OpSpec:
    """Remove an op from the registry and return its spec (for tests and plugin authors)."""
    return OPS.unregister(name)


def load_plugins(*, reload: bool = False) -> list[str]:
    """Load the ``geoconv.ops`` entry points (once; ``reload=True`` looks again).

    Loading an entry point imports its module; a module Python has already imported is
    not executed again, so ``reload=True`` finds new entry points but does not re-run
    plugins that are already imported (use :func:`importlib.reload` for that).

    Returns
    -------
    list of str
        The names of the entry points that loaded.
    """
    return OPS.load_plugins(reload=reload)


_MISSING_EXTRAS: dict[str, str] = {}


def declare_missing_extra(name: str, message: str) -> None:
    """Say why the optional op ``name`` is not registered here (an extra to install).

    :func:`get_op` (and so :func:`build_op` and configs) then answers a request for it with
    ``message`` instead of a plain "unknown op".
    """
    _MISSING_EXTRAS[check_entry_name("op", name)] = message


def get_op(name: str) -> OpSpec:
    """Return the :class:`OpSpec` registered as ``name``.

    Raises
    ------
    UnknownNameError
        With the closest registered names, or, for an optional op whose extra is not
        installed (``disco_conv`` without torch-harmonics), the extra to install.
    """
    try:
        return OPS.get(name)
    except UnknownNameError as error:
        if isinstance(name, str) and name in _MISSING_EXTRAS and name not in OPS:
            raise UnknownNameError(_MISSING_EXTRAS[name], kind="op", name=name, choices=error.choices) from None
        raise


def list_ops(pattern: str = "*", *, grid: str | None = None) -> list[str]:
    """Sorted names of the registered ops matching an :mod:`fnmatch` ``pattern``.

    Parameters
    ----------
    pattern : str
        E.g. ``"*pool*"``.
    grid : str, optional
        Only ops that support this grid.

    >>> "conv" in list_ops()
    True
    >>> list_ops("*unpool")
    ['max_unpool']
    """
    names = OPS.names(pattern)
    if grid is None:
        return names
    return [name for name in names if grid in OPS.get(name).grids]


def build_op(
    name: str,
    in_channels: int,
    out_channels: int | None = None,
    grid: str = "planar",
    **params: Any,
) -> nn.Module:
    """Build the op ``name`` as a ``torch.nn.Module``.

    Parameters
    ----------
    name : str
        A registered op (see :func:`list_ops`).
    in_channels : int
        Channels of the input.
    out_channels : int, optional
        Channels of the output; defaults to ``in_channels``. Pooling-type ops require
        them equal.
    grid : str
        A registered grid (``planar``, ``equirect``, ``cubemap``, ``healpix`` or a
        plugin's); the op must support it.
    **params
        Fields of the op's config dataclass (``geoconv ops NAME`` lists them).

    Raises
    ------
    GeoconvError
        For an unknown op, grid or parameter (with suggestions), a wrong type, a bad
        value, or an op asked for a grid it does not support.

    Examples
    --------
    >>> import torch
    >>> conv = build_op("conv", 3, 8, kernel_size=3, stride=2)
    >>> conv(torch.randn(1, 3, 15, 15)).shape   # "same": ceil(15 / 2) = 8
    torch.Size([1, 8, 8, 8])
    """
    return get_op(name).build(in_channels, out_channels, grid, **params)
