"""The benchmark's rows: what each will run (:class:`RowSpec`), the plan of the sweep, and a measured :class:`Row`.

Rows are grouped by (grid, resolution) of the cases. Every group has its cases, then the
fixed baselines (``floor``, ``copy``, ``pad`` per padding mode), then the op baselines: on
the case's grid when the op runs there, else on the first grid of ``job.match_pixels`` the op
runs on, at the resolution with the nearest pixel count
(:meth:`geoconv.grids.Grid.size_for_pixels`). An op baseline whose op is not registered
here gets a ``skipped`` row in every group, saying why.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from geoconv.experiment.jobs.benchmark.baselines import (
    FIXED_BASELINES,
    baseline_grids,
    op_params,
    reference_path,
    unavailable,
)
from geoconv.experiment.jobs.benchmark.settings import Settings
from geoconv.grids import get_grid

__all__ = ["FIELDS", "STATUSES", "Row", "RowSpec", "pixels", "plan", "size_key", "tensor_shape"]

FIELDS = (
    "group",
    "label",
    "role",
    "op",
    "grid",
    "padding_mode",
    "size",
    "shape",
    "pixels",
    "params",
    "fwd_ms",
    "fwd_ms_min",
    "fwdbwd_ms",
    "fwdbwd_ms_min",
    "peak_bytes",
    "peak_mb",
    "fwd_ratio",
    "fwdbwd_ratio",
    "mem_ratio",
    "pad_over_copy",
    "pad_over_copy_fwdbwd",
    "timer",
    "memory",
    "status",
    "reason",
)
"""The fields of a row, in the CSV's column order (the CSV adds the settings and the machine)."""

STATUSES = ("ok", "oom", "skipped", "failed")
"""A row's status: measured, out of memory, not run (with why), or failed (with the message)."""


def size_key(size: Any) -> str:
    """A resolution as metric names write it: ``64``, or ``HxW`` for a pair.

    >>> size_key(64), size_key((8, 12))
    ('64', '8x12')
    """
    return "x".join(map(str, size)) if isinstance(size, tuple) else str(size)


def tensor_shape(grid: str, size: Any, batch: int, channels: int) -> tuple[int, ...]:
    """The input shape of ``grid`` at resolution ``size`` (:meth:`geoconv.grids.Grid.shape_at`)."""
    return get_grid(grid).shape_at(batch, channels, size)


def pixels(grid: str, size: Any) -> int:
    """Pixels of one signal (one channel) of ``grid`` at resolution ``size``.

    >>> pixels("healpix", 4), pixels("equirect", (8, 12))
    (192, 96)
    """
    return math.prod(tensor_shape(grid, size, 1, 1)[2:])


@dataclasses.dataclass
class RowSpec:
    """What a row will run, before it runs: in group ``(group_grid, group_size)``, on ``(grid, size)``."""

    group_grid: str
    group_size: Any
    label: str
    role: str  # case | floor | copy | pad | baseline
    op: str
    grid: str
    size: Any
    padding_mode: str | None = None
    params: dict[str, Any] = dataclasses.field(default_factory=dict)
    skip: str = ""

    @property
    def group(self) -> str:
        """``grid/size`` of the case this row stands beside (the metric names' middle)."""
        return f"{self.group_grid}/{size_key(self.group_size)}"


@dataclasses.dataclass
class Row:
    """One measured row; :data:`FIELDS` are its CSV columns (missing ones read as ``None``)."""

    spec: RowSpec
    values: dict[str, Any]

    def __getitem__(self, key: str) -> Any:
        return self.values.get(key)

    @property
    def status(self) -> str:
        """One of :data:`STATUSES`."""
        return self.values["status"]


def _op_baseline(name: str, grid: str, size: Any, settings: Settings) -> RowSpec | None:
    """The row of op baseline ``name`` beside the cases on ``grid`` at ``size``; ``None``: it has none."""
    common = {"group_grid": grid, "group_size": size, "label": name, "role": "baseline", "op": name}
    grids = baseline_grids(name)
    if grids is None:  # not registered here, so its grids are unknown: a skipped row beside the case says why
        return RowSpec(grid=grid, size=size, skip=unavailable(name), **common)
    if grid in grids:
        run_grid, run_size = grid, size
    else:
        run_grid = next((g for g in settings.match_pixels if g in grids), None)
        if run_grid is None:
            return None
        run_size = get_grid(run_grid).size_for_pixels(pixels(grid, size))
    # A reference path runs its op with the op's defaults; an op baseline gets the job's kernel size.
    params = op_params(name, settings.kernel_size, None) if reference_path(name)[0] == name else {}
    return RowSpec(grid=run_grid, size=run_size, params=params, skip=unavailable(name), **common)


def plan(settings: Settings) -> list[RowSpec]:
    """Every row of the sweep, grouped by (grid, resolution), in the order they run."""
    rows: list[RowSpec] = []
    k = settings.kernel_size
    for grid in dict.fromkeys(c.grid for c in settings.cases):
        cases = [c for c in settings.cases if c.grid == grid]
        modes = list(dict.fromkeys(c.padding_mode for c in cases if c.padding_mode is not None))
        default = get_grid(grid).default_padding_mode
        for size in settings.sizes[grid]:
            common = {"group_grid": grid, "group_size": size, "grid": grid, "size": size}
            for case in cases:
                params = op_params(case.op, k, case.padding_mode, case.params)
                rows.append(
                    RowSpec(
                        label=case.label,
                        role="case",
                        op=case.op,
                        padding_mode=case.padding_mode,
                        params=params,
                        **common,
                    )
                )
            if "floor" in settings.baselines:
                rows.append(RowSpec(label="floor", role="floor", op="torch.nn.Conv2d", **common))
            if modes and "copy" in settings.baselines:
                rows.append(RowSpec(label="copy", role="copy", op="clone", **common))
            if "pad" in settings.baselines:
                for mode in modes:
                    label = "pad" if mode == default else f"pad:{mode}"
                    rows.append(RowSpec(label=label, role="pad", op="grid.pad", padding_mode=mode, **common))
            for name in settings.baselines:
                if name not in FIXED_BASELINES and (row := _op_baseline(name, grid, size, settings)) is not None:
                    rows.append(row)
    return rows
