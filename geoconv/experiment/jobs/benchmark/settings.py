"""The benchmark's job config, validated before any timing: :class:`Settings` and its parts.

Every error names the parameter (``job.sizes.healpix[1]``), the value and what was expected;
unknown names come with the closest valid ones. Sizes are checked against the grid itself
(:meth:`geoconv.grids.Grid.shape_at`), so a plugin grid's resolutions are checked as the
grid defines them.

>>> settings = Settings.from_job({
...     "cases": [{"op": "conv", "grid": "planar", "padding_mode": None}], "sizes": {"planar": [8, [8, 12]]},
...     "batch": 1, "channels": 2, "kernel_size": 3, "repeats": 1, "warmup": 0, "dtype": "float32",
...     "passes": ["fwd"], "baselines": ["floor"]})
>>> settings.cases[0].label, settings.sizes["planar"], settings.match_pixels, settings.sht_lmax
('conv', (8, (8, 12)), (), None)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import torch

from geoconv._checks import check_choice, check_float, check_int
from geoconv.errors import GeoconvError, ParameterError, unknown_name
from geoconv.experiment.jobs.benchmark.allocator import ALLOCATORS
from geoconv.experiment.jobs.benchmark.baselines import conv_paths, known_baselines, op_params
from geoconv.grids import get_grid, list_grids
from geoconv.ops.registry import get_op, list_ops

__all__ = ["DTYPES", "PASSES", "Case", "Settings", "Target"]

Plain = dict[str, Any]

DTYPES = {"float32": torch.float32, "float64": torch.float64, "float16": torch.float16, "bfloat16": torch.bfloat16}
PASSES = ("fwd", "fwdbwd")


@dataclasses.dataclass(frozen=True)
class Case:
    """One (op, grid, padding_mode) of the sweep; ``padding_mode`` is resolved (``None``: the op has none).

    ``path`` names the convolution path (``geoconv.ops.conv_path``) the op runs under
    (``None``: the default, ``auto``); ``sizes`` the case's own resolutions of its grid
    (``None``: ``job.sizes.<grid>``).
    """

    op: str
    grid: str
    padding_mode: str | None
    params: dict[str, Any]
    path: str | None = None
    sizes: tuple[Any, ...] | None = None

    @property
    def label(self) -> str:
        """``op``, ``op:mode`` when the mode is not the grid's own, then ``[path]`` for a named path.

        >>> Case("conv", "healpix", "healpix", {}, path="halo").label, Case("conv", "equirect", "zeros", {}).label
        ('conv[halo]', 'conv:zeros')
        """
        label = self.op
        if self.padding_mode is not None and self.padding_mode != get_grid(self.grid).default_padding_mode:
            label = f"{label}:{self.padding_mode}"
        return label if self.path in (None, "auto") else f"{label}[{self.path}]"


@dataclasses.dataclass(frozen=True)
class Target:
    """A pass/fail bound on the metrics matching ``patterns`` (fnmatch)."""

    name: str
    patterns: tuple[str, ...]
    minimum: float | None
    maximum: float | None

    def describe(self) -> str:
        """The bound in words: ``in [a, b]``, ``>= a`` or ``<= b``."""
        if self.minimum is not None and self.maximum is not None:
            return f"in [{self.minimum:g}, {self.maximum:g}]"
        return f">= {self.minimum:g}" if self.minimum is not None else f"<= {self.maximum:g}"


@dataclasses.dataclass(frozen=True)
class Settings:
    """The validated ``job`` config of ``experiment=benchmark`` (see ``conf/job/benchmark.yaml``).

    ``sizes`` maps each grid of the cases to its resolutions (an int, or a pair ``(H, W)``);
    ``match_pixels`` lists the grids an op baseline may run on, at about a case's pixel count,
    when it does not run on the case's own grid (empty: never).
    """

    cases: tuple[Case, ...]
    sizes: dict[str, tuple[Any, ...]]
    batch: int
    channels: int
    kernel_size: int
    repeats: int
    warmup: int
    dtype: str
    passes: tuple[str, ...]
    memory: bool
    baselines: tuple[str, ...]
    match_pixels: tuple[str, ...]
    targets: tuple[Target, ...]
    threads: int | None = None
    sht_lmax: int | None = None
    allocator: str = "system"

    def case_sizes(self, case: Case) -> tuple[Any, ...]:
        """The resolutions ``case`` runs at: its own, else those of its grid."""
        return self.sizes[case.grid] if case.sizes is None else case.sizes

    @classmethod
    def from_job(cls, job: Plain) -> Settings:
        """Validate the job config; every error names the parameter, the value and what was expected."""
        batch = check_int("job.batch", job.get("batch"), minimum=1)
        channels = check_int("job.channels", job.get("channels"), minimum=1)
        kernel_size = check_int("job.kernel_size", job.get("kernel_size"), minimum=1)
        if kernel_size % 2 == 0:
            raise ParameterError(
                f"job.kernel_size must be odd (the floor's padding k // 2 keeps the size only then), got {kernel_size}"
            )
        repeats = check_int("job.repeats", job.get("repeats"), minimum=1)
        warmup = check_int("job.warmup", job.get("warmup"), minimum=0)
        dtype = check_choice("job.dtype", job.get("dtype"), DTYPES)
        passes = tuple(check_choice("job.passes", p, PASSES) for p in _list("job.passes", job.get("passes")))
        if not passes:
            raise ParameterError(f"job.passes must name at least one of {list(PASSES)}, got []")
        memory = _bool("job.memory", job.get("memory", True))
        match_pixels = _match_pixels(job.get("match_pixels"))
        baselines = _baselines(job.get("baselines") or [])
        threads = job.get("threads")
        if threads is not None:
            threads = check_int("job.threads", threads, minimum=1)
        raw_cases = _list("job.cases", job.get("cases"))
        cases = tuple(_case(f"job.cases[{i}]", raw, kernel_size) for i, raw in enumerate(raw_cases))
        if not cases:
            raise ParameterError("job.cases must hold at least one case {op, grid, padding_mode}, got []")
        _unique("job.cases has the case {!r} on grid {!r} twice", [(c.label, c.grid) for c in cases])
        sizes = _sizes(job.get("sizes"), cases, kernel_size)
        raw_targets = _list("job.targets", job.get("targets") or [])
        targets = tuple(_target(f"job.targets[{i}]", t) for i, t in enumerate(raw_targets))
        _unique("job.targets has the name {!r} twice", [(t.name,) for t in targets])
        sht_lmax = job.get("sht_lmax")
        if sht_lmax is not None:
            sht_lmax = check_int("job.sht_lmax", sht_lmax, minimum=1)
        allocator = check_choice("job.allocator", job.get("allocator", "system"), ALLOCATORS)
        return cls(
            cases=cases,
            sizes=sizes,
            batch=batch,
            channels=channels,
            kernel_size=kernel_size,
            repeats=repeats,
            warmup=warmup,
            dtype=dtype,
            passes=passes,
            memory=memory,
            baselines=baselines,
            match_pixels=match_pixels,
            targets=targets,
            threads=threads,
            sht_lmax=sht_lmax,
            allocator=allocator,
        )


def _unique(message: str, keys: list[tuple[str, ...]]) -> None:
    for key in keys:
        if keys.count(key) > 1:
            raise ParameterError(message.format(*key))


def _list(name: str, value: object) -> list[Any]:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise ParameterError(f"{name} must be a list, got {value!r}")
    return list(value)


def _bool(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise ParameterError(f"{name} must be true or false, got {value!r}")
    return value


def _baselines(raw: object) -> tuple[str, ...]:
    known = known_baselines()
    names: list[str] = []
    for name in _list("job.baselines", raw):
        if name not in known:
            raise unknown_name("baseline (job.baselines)", name, known)
        if name not in names:
            names.append(name)
    return tuple(names)


def _match_pixels(raw: object) -> tuple[str, ...]:
    """The grids of ``job.match_pixels``: a list of grid names, one name, or false/null/[] for none."""
    if raw is None or raw is False:
        return ()
    if raw is True:
        raise ParameterError(
            "job.match_pixels must name the grids an op baseline may run on at about the case's pixel count "
            "(e.g. [equirect]), or be false; got true"
        )
    names = [raw] if isinstance(raw, str) else _list("job.match_pixels", raw)
    for i, name in enumerate(names):
        if name not in list_grids():
            raise unknown_name(f"grid (job.match_pixels[{i}])", name, list_grids())
    return tuple(dict.fromkeys(names))


def _case(name: str, raw: object, kernel_size: int) -> Case:
    keys = ("op", "grid", "padding_mode", "params", "path", "sizes")
    if not isinstance(raw, dict):
        raise ParameterError(f"{name} must be a mapping {{op, grid, padding_mode}}, got {raw!r}")
    unknown = set(raw) - set(keys)
    if unknown:
        raise unknown_name(f"key of {name}", sorted(unknown)[0], keys)
    op = raw.get("op")
    if op not in list_ops():
        raise unknown_name(f"op ({name}.op)", op, list_ops())
    grid = raw.get("grid")
    if grid not in list_grids():
        raise unknown_name(f"grid ({name}.grid)", grid, list_grids())
    spec = get_op(op)
    spec.check_grid(grid)
    params = dict(raw.get("params") or {})
    mode = raw.get("padding_mode")
    if spec.padded:
        mode = get_grid(grid).check_mode(mode if mode is not None else params.get("padding_mode"))
    elif mode is not None:
        raise ParameterError(f"{name}.padding_mode={mode!r} is set, but op {op!r} has no padding; leave it null")
    spec.make_config(**op_params(op, 1, mode, params))  # wrong parameters fail here, before any timing
    path = raw.get("path")
    if path is not None:
        path = check_choice(f"{name}.path", path, conv_paths())
        if mode is None:
            raise ParameterError(f"{name}.path={path!r} is set, but op {op!r} has no padding to take a path for")
    sizes = raw.get("sizes")
    if sizes is not None:
        values = _list(f"{name}.sizes", sizes)
        if not values:
            raise ParameterError(f"{name}.sizes must list at least one resolution (or be left out), got []")
        sizes = tuple(_size(f"{name}.sizes[{j}]", grid, v, kernel_size) for j, v in enumerate(values))
    return Case(op, grid, mode, params, path, sizes)


def _sizes(raw: object, cases: Sequence[Case], kernel_size: int) -> dict[str, tuple[Any, ...]]:
    """The checked resolutions of every grid a case uses, from ``job.sizes``."""
    if not isinstance(raw, dict):
        raise ParameterError(f"job.sizes must map grid names to lists of resolutions, got {raw!r}")
    sizes: dict[str, tuple[Any, ...]] = {}
    for grid in dict.fromkeys(c.grid for c in cases):
        if grid not in raw:
            raise ParameterError(
                f"job.sizes has no resolutions for grid {grid!r} (job.sizes.{grid}), which a case uses; "
                f"it has {sorted(raw)}"
            )
        values = _list(f"job.sizes.{grid}", raw[grid])
        if not values:
            raise ParameterError(f"job.sizes.{grid} must list at least one resolution, got []")
        sizes[grid] = tuple(_size(f"job.sizes.{grid}[{j}]", grid, v, kernel_size) for j, v in enumerate(values))
    return sizes


def _size(name: str, grid_name: str, value: object, kernel_size: int) -> Any:
    """The resolution ``value`` of ``grid_name`` (its resolution parameter or a pair ``[H, W]``), checked."""
    grid = get_grid(grid_name)
    if isinstance(value, bool) or not isinstance(value, int | Sequence) or isinstance(value, str):
        raise ParameterError(f"{name} = {value!r} must be a resolution of grid {grid_name!r} or a pair [H, W]")
    size = tuple(value) if isinstance(value, Sequence) else value
    try:
        face = grid.shape_at(1, 1, size)[-2:]
    except GeoconvError as err:
        raise ParameterError(
            f"{name} = {value!r} does not fit grid {grid_name!r} (layout {grid.layout}; a resolution, or faces "
            f"[H, W]): {err}"
        ) from None
    if kernel_size // 2 > min(face):
        raise ParameterError(
            f"{name} = {value!r}: a face of {face[0]}x{face[1]} pixels is smaller than the padding "
            f"kernel_size // 2 = {kernel_size // 2}; use a larger resolution or a smaller job.kernel_size"
        )
    return size


def _target(name: str, raw: object) -> Target:
    keys = ("name", "metric", "min", "max")
    if not isinstance(raw, dict) or "name" not in raw or "metric" not in raw:
        raise ParameterError(f"{name} must be a mapping {{name, metric, min and/or max}}, got {raw!r}")
    unknown = set(raw) - set(keys)
    if unknown:
        raise unknown_name(f"key of {name}", sorted(unknown)[0], keys)
    patterns = raw["metric"]
    patterns = (patterns,) if isinstance(patterns, str) else tuple(_list(f"{name}.metric", patterns))
    if not patterns or not all(isinstance(p, str) and p for p in patterns):
        raise ParameterError(f"{name}.metric must be a metric name pattern or a list of them, got {raw['metric']!r}")
    minimum = None if raw.get("min") is None else check_float(f"{name}.min", raw["min"])
    maximum = None if raw.get("max") is None else check_float(f"{name}.max", raw["max"])
    if minimum is None and maximum is None:
        raise ParameterError(f"{name} ({raw['name']!r}) needs a bound: min, max or both")
    return Target(str(raw["name"]), patterns, minimum, maximum)
