"""Run the sweep: every row of the plan, measured; a row that fails or runs out of memory does not stop it.

Each row ends with a ``status``: ``ok``; ``oom`` (memory is freed and the sweep goes on);
``skipped`` (with why); ``failed`` (any other exception, with its message). Then every ``ok``
row gets its ratios to the floor of its group, and pad rows their ratios to the copy.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from geoconv.experiment.jobs.benchmark.render import row_summary
from geoconv.experiment.jobs.benchmark.rows import Row, RowSpec, plan, size_key, tensor_shape
from geoconv.experiment.jobs.benchmark.settings import Settings
from geoconv.experiment.jobs.benchmark.workload import build_workload, free_memory, is_oom, measure
from geoconv.grids import get_grid

__all__ = ["run_row", "run_sweep"]


def run_row(spec: RowSpec, settings: Settings, device: torch.device, generator: torch.Generator) -> dict[str, Any]:
    """Build and measure one row; returns its values (:data:`~.rows.FIELDS`), with its status."""
    shape = tensor_shape(spec.grid, spec.size, settings.batch, settings.channels)
    values: dict[str, Any] = {
        "group": spec.group,
        "label": spec.label,
        "role": spec.role,
        "op": spec.op,
        "grid": spec.grid,
        "padding_mode": spec.padding_mode or "",
        "size": get_grid(spec.grid).size_label(spec.size),
        "shape": "x".join(map(str, shape)),
        "pixels": math.prod(shape[2:]),
        "params": "",
        "reason": "",
    }
    if spec.skip:
        return values | {"status": "skipped", "reason": spec.skip}
    work = None
    try:
        work = build_workload(spec, settings, device, generator)
        if work.module is not None:
            work.fwd()  # lazy parameters exist after a first call
            values["params"] = sum(p.numel() for p in work.module.parameters())
        values.update(measure(work, settings, device))
        values["status"] = "ok"
    except Exception as err:
        message = f"{type(err).__name__}: {err}".strip().splitlines()[0][:500]
        values.update(status="oom" if is_oom(err) else "failed", reason=message)
    del work  # the row's tensors go here (reference counts); after an error, also what its traceback held
    if values["status"] != "ok":
        free_memory(device)
    return values


def add_ratios(rows: list[Row]) -> None:
    """Ratios of every ``ok`` row to the floor of its group, and of pad rows to the copy (in place)."""
    floors = {r.spec.group: r for r in rows if r.spec.role == "floor" and r.status == "ok"}
    copies = {r.spec.group: r for r in rows if r.spec.role == "copy" and r.status == "ok"}
    for row in rows:
        if row.status != "ok":
            continue
        floor = floors.get(row.spec.group)
        for mine, theirs in (("fwd_ratio", "fwd_ms"), ("fwdbwd_ratio", "fwdbwd_ms"), ("mem_ratio", "peak_bytes")):
            if floor is not None and row[theirs] is not None and floor[theirs]:
                row.values[mine] = row[theirs] / floor[theirs]
        copy = copies.get(row.spec.group)
        if row.spec.role == "pad" and copy is not None:
            for mine, theirs in (("pad_over_copy", "fwd_ms"), ("pad_over_copy_fwdbwd", "fwdbwd_ms")):
                if row[theirs] is not None and copy[theirs]:
                    row.values[mine] = row[theirs] / copy[theirs]


def run_sweep(
    settings: Settings,
    device: torch.device,
    generator: torch.Generator,
    report: Callable[[str], None] = lambda message: None,
) -> list[Row]:
    """Run every row of :func:`~.rows.plan`, then :func:`add_ratios`; ``report`` gets one line per row."""
    specs = plan(settings)
    rows = []
    for i, spec in enumerate(specs, 1):
        values = run_row(spec, settings, device, generator)
        rows.append(Row(spec, values))
        report(f"[{i}/{len(specs)}] {spec.group_grid} {size_key(spec.group_size)}: {row_summary(values)}")
    add_ratios(rows)
    return rows
