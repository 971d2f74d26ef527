"""The benchmark's rows: what each will run (:class:`RowSpec`), the plan of the sweep, and a measured :class:`Row`.

Rows are grouped by (grid, resolution) of the cases (a case runs at its own ``sizes`` or at
``job.sizes.<grid>``; the groups of a grid are ordered by pixel count). Every group has its
cases, then the fixed baselines (``floor``; ``floor_transpose`` where a transposed case runs;
``copy``, ``pad`` per padding mode), then the op baselines: on the case's grid when the op runs
there, else on the first grid of ``job.match_pixels`` the op runs on, at the resolution with
the nearest pixel count (:meth:`geoconv.grids.Grid.size_for_pixels`). An op baseline whose op
is not registered here gets a ``skipped`` row in every group, saying why. With
``job.sht_lmax`` a last group holds the spectral transform (``sht``) beside ducc0's
(``ducc0_sht``).

Every row names its ``partner``, the row it is timed interleaved with (:func:`partner_of`):
the floor of its group (``floor_transpose`` for a transposed case), and ``ducc0_sht`` for
``sht``. The partners themselves (the *anchors*, :data:`ANCHOR_ROLES`) have none.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from geoconv.experiment.jobs.benchmark.baselines import (
    FIXED_BASELINES,
    baseline_grids,
    ducc0_unavailable,
    is_transposed,
    op_params,
    path_unavailable,
    reference_path,
    unavailable,
)
from geoconv.experiment.jobs.benchmark.settings import Settings
from geoconv.grids import get_grid
from geoconv.ops.registry import get_op

__all__ = [
    "ANCHOR_ROLES",
    "FIELDS",
    "STATUSES",
    "Row",
    "RowSpec",
    "partner_of",
    "pixels",
    "plan",
    "sht_size",
    "size_key",
    "tensor_shape",
]

ANCHOR_ROLES = ("floor", "sht_ref")
"""Roles of the rows others are paired with: their times are pooled over all their pairs."""

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
    "path",
    "partner",
    "pairs",
    "fwd_ms",
    "fwd_ms_min",
    "fwdbwd_ms",
    "fwdbwd_ms_min",
    "fwd_ratio",
    "fwd_ratio_q25",
    "fwd_ratio_q75",
    "fwdbwd_ratio",
    "fwdbwd_ratio_q25",
    "fwdbwd_ratio_q75",
    "peak_bytes",
    "peak_mb",
    "mem_ratio",
    "pad_over_copy",
    "pad_over_copy_q25",
    "pad_over_copy_q75",
    "pad_over_copy_fwdbwd",
    "pad_over_copy_fwdbwd_q25",
    "pad_over_copy_fwdbwd_q75",
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
    role: str  # case | floor | copy | pad | baseline | sht | sht_ref
    op: str
    grid: str
    size: Any
    padding_mode: str | None = None
    params: dict[str, Any] = dataclasses.field(default_factory=dict)
    skip: str = ""
    partner: str = ""
    path: str | None = None

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


def sht_size(lmax: int) -> tuple[int, int]:
    """The equirect grid ``(H, W)`` of the spectral-transform rows at band limit ``L``: ``H = 2 (L + 1)``, ``W = 2H``.

    geoconv's quadrature is exact for ``H > 2L`` and ``W > 2L`` (:func:`geoconv.ops.spectral.max_lmax`);
    the smallest even ``H`` keeps the rows symmetric about the equator.

    >>> sht_size(128)
    (258, 516)
    """
    return 2 * (lmax + 1), 4 * (lmax + 1)


def partner_of(role: str, op: str) -> str:
    """The label of the row a row of ``role`` running ``op`` is timed interleaved with ("" for an anchor).

    >>> partner_of("case", "conv"), partner_of("case", "conv_transpose"), partner_of("pad", "grid.pad")
    ('floor', 'floor_transpose', 'floor')
    """
    if role in ANCHOR_ROLES:
        return ""
    if role == "sht":
        return "ducc0_sht"
    return "floor_transpose" if role == "case" and is_transposed(op) else "floor"


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
    return RowSpec(grid=run_grid, size=run_size, params=params, skip=unavailable(name), partner="floor", **common)


def _grid_sizes(settings: Settings, grid: str) -> list[Any]:
    """Every resolution a case on ``grid`` runs at, ordered by pixel count (stable)."""
    sizes = dict.fromkeys(s for c in settings.cases if c.grid == grid for s in settings.case_sizes(c))
    return sorted(sizes, key=lambda size: pixels(grid, size))


def _sht_rows(lmax: int) -> list[RowSpec]:
    size = sht_size(lmax)
    common = {"group_grid": "equirect", "group_size": size, "grid": "equirect", "size": size, "params": {"lmax": lmax}}
    return [
        RowSpec(label="sht", role="sht", op="sh_analysis+sh_synthesis", partner="ducc0_sht", **common),
        RowSpec(
            label="ducc0_sht",
            role="sht_ref",
            op="ducc0.sht.analysis_2d+synthesis_2d",
            skip=ducc0_unavailable(),
            **common,
        ),
    ]


def plan(settings: Settings) -> list[RowSpec]:
    """Every row of the sweep, grouped by (grid, resolution), in the order they run."""
    rows: list[RowSpec] = []
    k = settings.kernel_size
    for grid in dict.fromkeys(c.grid for c in settings.cases):
        cases = [c for c in settings.cases if c.grid == grid]
        modes = list(dict.fromkeys(c.padding_mode for c in cases if c.padding_mode is not None))
        default = get_grid(grid).default_padding_mode
        for size in _grid_sizes(settings, grid):
            common = {"group_grid": grid, "group_size": size, "grid": grid, "size": size}
            here = [c for c in cases if size in settings.case_sizes(c)]
            for case in here:
                rows.append(
                    RowSpec(
                        label=case.label,
                        role="case",
                        op=case.op,
                        padding_mode=case.padding_mode,
                        params=op_params(case.op, k, case.padding_mode, case.params),
                        skip=path_unavailable(case.path),
                        partner=partner_of("case", case.op),
                        path=case.path,
                        **common,
                    )
                )
            if "floor" in settings.baselines:
                rows.append(RowSpec(label="floor", role="floor", op="torch.nn.Conv2d", **common))
                transposed = next((c for c in here if is_transposed(c.op)), None)
                if transposed is not None:
                    # The floor of a transposed case upsamples by the case's stride, as the case does.
                    config = get_op(transposed.op).make_config(**op_params(transposed.op, k, None, transposed.params))
                    stride = {"stride": tuple(config.stride)}
                    rows.append(
                        RowSpec(
                            label="floor_transpose",
                            role="floor",
                            op="torch.nn.ConvTranspose2d",
                            params=stride,
                            **common,
                        )
                    )
            if modes and "copy" in settings.baselines:
                rows.append(RowSpec(label="copy", role="copy", op="clone", partner="floor", **common))
            if "pad" in settings.baselines:
                # torch's own zero padding of the faces beside the grid's: what writing a padded copy costs at least.
                zeros = ["zeros"] if modes and "zeros" in get_grid(grid).padding_modes else []
                for mode in dict.fromkeys([*modes, *zeros]):
                    label = "pad" if mode == default else f"pad:{mode}"
                    rows.append(
                        RowSpec(label=label, role="pad", op="grid.pad", padding_mode=mode, partner="floor", **common)
                    )
            for name in settings.baselines:
                if name not in FIXED_BASELINES and (row := _op_baseline(name, grid, size, settings)) is not None:
                    rows.append(row)
    if settings.sht_lmax is not None:
        rows += _sht_rows(settings.sht_lmax)
    return rows
