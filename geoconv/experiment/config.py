"""Hydra glue: the ``op`` config group from the registry, validation before any work, safe builds.

The ``op`` group is generated, not hand-written: :func:`register_configs` stores one node
per registered op (plugins included) in Hydra's ConfigStore, holding the op's name and its
config dataclass's defaults::

    op:
      name: conv
      params: {kernel_size: 3, stride: 1, padding: same, ...}

so ``python experiments/run.py op=gated_conv op.params.activation=relu`` works for every
op without a YAML file per op. Configs never name code: models, ops and probes are built
by registry name from allow-lists, never from an arbitrary ``_target_``.

:func:`validate` checks a composed config before anything is computed: missing values,
unknown op or grid names, wrong parameter types and unsupported op/grid pairs all raise
:class:`~geoconv.errors.GeoconvError` (or Hydra's own error at composition).

Examples
--------
>>> node = op_node("conv")
>>> node["name"], node["params"]["kernel_size"], node["params"]["padding"]
('conv', 3, 'same')
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue

from geoconv._checks import check_int
from geoconv.errors import GeoconvError, ParameterError
from geoconv.grids import get_grid, list_grids
from geoconv.nn.build import MODELS
from geoconv.ops.registry import get_op, list_ops

__all__ = ["CONFIG_DIR", "inapplicable", "op_node", "register_configs", "to_plain", "validate"]

CONFIG_DIR = Path(__file__).resolve().parents[1] / "conf"
"""The Hydra config directory, shipped inside the package (``geoconv/conf``; ``conf/`` in a checkout links to it)."""


def to_plain(value: Any) -> Any:
    """Turn tuples into lists (OmegaConf has no tuples), recursively."""
    if isinstance(value, tuple | list):
        return [to_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: to_plain(v) for k, v in value.items()}
    return value


def op_node(name: str) -> dict[str, Any]:
    """The config node of op ``name``: its name and its parameters' defaults."""
    spec = get_op(name)
    return {"name": name, "params": {p.name: to_plain(p.default) for p in spec.parameters() if not p.required}}


def register_configs(conf_dir: str | os.PathLike | None = None) -> None:
    """Store the ``op`` group (every registered op) and the plugin grids in Hydra's ConfigStore.

    A registered grid with no ``conf_dir/grid/NAME.yaml`` (a plugin's) gets the node
    ``{name: NAME, size: <its default_size>}``, so ``grid=NAME`` works without a YAML file;
    the shipped YAML files keep their comments and win where they exist.

    Parameters
    ----------
    conf_dir : str or os.PathLike, optional
        The Hydra config directory; by default the repository's ``conf/`` beside the package.
    """
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    for name in list_ops():
        store.store(group="op", name=name, node=op_node(name))
    grid_dir = Path(conf_dir if conf_dir is not None else CONFIG_DIR) / "grid"
    for name in list_grids():
        if not (grid_dir / f"{name}.yaml").is_file():
            store.store(group="grid", name=name, node={"name": name, "size": get_grid(name).default_size})


def _container(cfg: DictConfig) -> dict[str, Any]:
    try:
        return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)  # type: ignore[return-value]
    except MissingMandatoryValue as err:
        raise ParameterError(
            f"config value missing (given as ???): {err.full_key}; set it on the command line"
        ) from None


def _check_sizes(plain: dict[str, Any], layout: Any) -> None:
    """``seed``, ``grid.size``, ``data.batch`` and ``data.channels``: checked here, not deep in a run."""
    if "seed" in plain:
        check_int("seed", plain["seed"], minimum=0)
    data = plain.get("data") if isinstance(plain.get("data"), dict) else {}
    batch = data.get("batch", 1)
    channels = data.get("channels", 1)
    for key, value, minimum in (("data.batch", batch, 1), ("data.channels", channels, 1)):
        check_int(key, value, minimum=minimum)
    if "size" in plain["grid"]:
        try:
            layout.shape(batch, channels, plain["grid"]["size"])
        except GeoconvError as err:
            raise ParameterError(
                f"grid.size={plain['grid']['size']!r} is not a size for grid {layout.name!r}: {err}"
            ) from None


def _lookup(plain: dict[str, Any], dotted: str) -> Any:
    node: Any = plain
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return _ABSENT
        node = node[part]
    return node


_ABSENT = object()


def _check_requires(plain: dict[str, Any]) -> None:
    """``requires: {dotted.key: value}``: what a variant or experiment needs of the composed config.

    A variant that builds a model for one grid (``variant=s2cnn`` reads equirect maps) says so
    here; a later override that changes the key (``variant=s2cnn grid=healpix``) is an error
    before any data is built, naming the key, the value needed and the value found.

    >>> _check_requires({"requires": {"grid.name": "equirect"}, "grid": {"name": "equirect"}})
    >>> _check_requires({"requires": {"grid.name": "equirect"}, "grid": {"name": "healpix"}})
    Traceback (most recent call last):
    ...
    geoconv.errors.ParameterError: this configuration requires grid.name='equirect' ... got grid.name='healpix'; ...
    """
    requires = plain.get("requires")
    if requires is None:
        return
    if not isinstance(requires, dict):
        raise ParameterError(f"requires must be a mapping of dotted config keys to values, got {requires!r}")
    for key, needed in requires.items():
        found = _lookup(plain, str(key))
        if found is _ABSENT:
            raise ParameterError(f"this configuration requires {key}={needed!r}, but the config has no key {key}")
        if found != needed:
            raise ParameterError(
                f"this configuration requires {key}={needed!r} (its `requires` key, set by a variant or experiment), "
                f"got {key}={found!r}; drop the override of {key} or choose another variant"
            )


def _check_op_params(spec: Any, op: dict[str, Any]) -> None:
    """Check ``op.params`` alone, so that a wrong value is named by its config key.

    The op's own checks name a parameter ``conv.kernel_size`` or ``kernel_size``; on the
    command line it is ``op.params.kernel_size``, and that is what the one-line error says
    (``op.params.kernel_size=three`` -> ``op.params.kernel_size must be of type int | ...,
    got 'three' (str)``).
    """
    given = dict(op.get("params") or {})
    try:
        spec.make_config(**given)
    except GeoconvError as err:
        message = str(err)
        for key in given:
            for written in (f"{spec.name}.{key} ", f"{key} "):
                if message.startswith(written):
                    # Same error (class and attributes), named as the command line names it.
                    err.args = (f"op.params.{key} {message[len(written) :]}",)
        raise err from None


def validate(cfg: DictConfig) -> dict[str, Any]:
    """Check a composed config before any work; return it as a plain resolved dict.

    Raises
    ------
    GeoconvError
        For a missing value, an unknown op, grid or model kind, a parameter of the wrong
        type or value, an op asked for a grid it does not support, or a ``seed``,
        ``grid.size``, ``data.batch`` or ``data.channels`` that is not a valid integer.
    """
    plain = _container(cfg)
    op, grid = plain.get("op"), plain.get("grid")
    if not isinstance(op, dict) or "name" not in op:
        raise ParameterError("config needs an op group choice, e.g. op=conv")
    if not isinstance(grid, dict) or "name" not in grid:
        raise ParameterError("config needs a grid group choice, e.g. grid=healpix")
    _check_requires(plain)
    spec = get_op(op["name"])
    layout = get_grid(grid["name"])
    spec.check_grid(grid["name"])
    _check_sizes(plain, layout)
    _check_op_params(spec, op)
    # The model-wide padding_mode: the one rule (an error for an op without padding).
    params = spec.with_padding_mode(op.get("params"), plain.get("padding_mode"))
    config = spec.make_config(**params)
    # A padding mode is checked against the grid here, not at the first forward pass.
    if "padding_mode" in params:
        get_grid(grid["name"]).check_mode(dataclasses.asdict(config).get("padding_mode"))
    model = plain.get("model")
    if isinstance(model, dict):
        MODELS.get(model.get("kind"))  # an unknown kind: did-you-mean over the model registry
    return plain


def inapplicable(cfg: DictConfig) -> str | None:
    """Why the config's op cannot run as asked, a combination that does not exist; ``None`` when it can.

    Two combinations do not exist: an op on a grid its registration does not list
    (``sphere_conv`` on HEALPix), and a model-wide ``padding_mode`` for an op without
    padding (``spectral_conv`` with ``padding_mode=zeros``). An op × grid × padding sweep
    meets both; with ``skip_inapplicable: true`` (the ``ablation`` experiment) such a job
    is recorded as ``skipped`` with this reason instead of failing (:func:`geoconv.experiment.runner.run`).
    Unknown names and every other invalid value are errors as always (:func:`validate`).

    >>> from omegaconf import OmegaConf
    >>> inapplicable(OmegaConf.create({"op": {"name": "cheb_conv"}, "grid": {"name": "equirect"}}))
    "op 'cheb_conv' runs on grid 'healpix' only, not on 'equirect'"
    >>> inapplicable(OmegaConf.create({"op": {"name": "conv"}, "grid": {"name": "healpix"}, "padding_mode": "zeros"}))
    """
    plain = _container(cfg)
    op, grid = plain.get("op"), plain.get("grid")
    if not (isinstance(op, dict) and isinstance(grid, dict) and op.get("name") in list_ops()):
        return None
    spec = get_op(op["name"])
    if grid.get("name") not in spec.grids and grid.get("name") in list_grids():
        grids = " or ".join(repr(g) for g in spec.grids)
        return f"op {spec.name!r} runs on grid {grids} only, not on {grid['name']!r}"
    if plain.get("padding_mode") is not None and not spec.padded:
        return f"op {spec.name!r} has no padding, so padding_mode={plain['padding_mode']!r} does not apply"
    return None
