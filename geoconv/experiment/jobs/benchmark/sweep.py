"""Run the sweep: every row of the plan, measured beside its partner; a failing row does not stop it.

Group by group (:func:`~.rows.plan`): the anchors (the floors, ducc0) and the copy are built
first and held; then each other row is built, timed interleaved with its partner repeat by
repeat (:func:`~.workload.measure`), traced for memory and freed; a pad row is also timed
interleaved with the copy (``pad_over_copy``). Last, each anchor's times, pooled over all its
pairs, become its own row (:func:`~.workload.measure_alone`). A row whose partner did not
build is timed alone and has no ratios.

Each row ends with a ``status``: ``ok``; ``oom`` (memory is freed and the sweep goes on);
``skipped`` (with why); ``failed`` (any other exception, with its message). Then every ``ok``
row gets its memory ratio to its partner.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from geoconv.experiment.jobs.benchmark.render import row_summary
from geoconv.experiment.jobs.benchmark.rows import ANCHOR_ROLES, Row, RowSpec, plan, size_key, tensor_shape
from geoconv.experiment.jobs.benchmark.settings import Settings
from geoconv.experiment.jobs.benchmark.timing import paired_times
from geoconv.experiment.jobs.benchmark.workload import (
    Workload,
    build_workload,
    free_memory,
    is_oom,
    measure,
    measure_alone,
    ratio_fields,
    row_device,
)
from geoconv.grids import get_grid

__all__ = ["add_memory_ratios", "run_sweep"]


def _identity(spec: RowSpec, settings: Settings) -> dict[str, Any]:
    """The fields of a row known before it runs."""
    shape = tensor_shape(spec.grid, spec.size, settings.batch, settings.channels)
    return {
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
        "path": spec.path or "",
        "partner": spec.partner,
        "reason": "",
    }


def _failure(err: Exception) -> dict[str, str]:
    message = f"{type(err).__name__}: {err}".strip().splitlines()[0][:500]
    return {"status": "oom" if is_oom(err) else "failed", "reason": message}


def _build(
    spec: RowSpec,
    values: dict[str, Any],
    settings: Settings,
    device: torch.device,
    generator: torch.Generator,
    x: torch.Tensor | None = None,
) -> Workload | None:
    """Build a row's workload (a first forward pass creates lazy parameters); on error, set the status."""
    if spec.skip:
        values.update(status="skipped", reason=spec.skip)
        return None
    try:
        work = build_workload(spec, settings, row_device(spec, device), generator, x=x)
        if work.module is not None:
            work.fwd()
            values["params"] = sum(p.numel() for p in work.module.parameters())
    except Exception as err:
        values.update(_failure(err))
        free_memory(device)
        return None
    return work


def _pad_over_copy(pad: Workload, copy: Workload, settings: Settings, device: torch.device) -> dict[str, Any]:
    """``pad_over_copy`` (forward) and ``pad_over_copy_fwdbwd``, each with its quartiles: pad paired with the copy."""
    out: dict[str, Any] = {}
    for name, field in (("fwd", "pad_over_copy"), ("fwdbwd", "pad_over_copy_fwdbwd")):
        if name in settings.passes:
            mine, theirs = paired_times(
                getattr(pad, name), getattr(copy, name), repeats=settings.repeats, warmup=settings.warmup, device=device
            )
            out |= ratio_fields(field, mine, theirs)
    return out


def _run_group(
    specs: list[RowSpec],
    settings: Settings,
    device: torch.device,
    generator: torch.Generator,
    report: Callable[[RowSpec, dict[str, Any]], None],
) -> list[dict[str, Any]]:
    """Measure the rows of one group; returns their values in the order of ``specs``."""
    values = [_identity(spec, settings) for spec in specs]
    held: dict[str, Workload] = {}  # label -> workload of the anchors and the copy
    pooled: dict[str, dict[str, list[float]]] = {}
    for i, spec in enumerate(specs):
        if spec.role in ANCHOR_ROLES or spec.role == "copy":
            work = _build(spec, values[i], settings, device, generator)
            if work is not None:
                held[spec.label] = work
                pooled[spec.label] = {}
    for i, spec in enumerate(specs):
        if spec.role in ANCHOR_ROLES:
            continue
        partner = held.get(spec.partner)
        work = held.get(spec.label) if spec.role == "copy" else None
        if work is None and "status" not in values[i]:
            shared = partner.x if spec.role == "sht" and partner is not None else None  # the same maps as ducc0's
            work = _build(spec, values[i], settings, device, generator, shared)
        if work is not None:
            try:
                fields, theirs = measure(work, settings, row_device(spec, device), partner)
                if spec.role == "pad" and "copy" in held:
                    fields |= _pad_over_copy(work, held["copy"], settings, row_device(spec, device))
                values[i].update(fields, status="ok")
                for name, times in theirs.items():
                    pooled[spec.partner].setdefault(name, []).extend(times)
            except Exception as err:
                values[i].update(_failure(err))
        del work  # the row's tensors go here (reference counts); after an error, also what its traceback held
        if values[i]["status"] != "ok":
            free_memory(device)
        report(spec, values[i])
    for i, spec in enumerate(specs):
        if spec.role not in ANCHOR_ROLES:
            continue
        if spec.label in held:
            try:
                fields = measure_alone(held[spec.label], settings, row_device(spec, device), pooled[spec.label])
                values[i].update(fields, status="ok")
            except Exception as err:
                values[i].update(_failure(err))
        report(spec, values[i])
    held.clear()
    free_memory(device)
    return values


def add_memory_ratios(rows: list[Row]) -> None:
    """``mem_ratio``: the peak memory of every ``ok`` row over its partner's (an anchor's own is 1), in place."""
    anchors = {(r.spec.group, r.spec.label): r for r in rows if r.spec.role in ANCHOR_ROLES and r.status == "ok"}
    for row in rows:
        if row.status != "ok" or row["peak_bytes"] is None:
            continue
        if row.spec.role in ANCHOR_ROLES:
            row.values["mem_ratio"] = 1.0 if row["peak_bytes"] else None
            continue
        partner = anchors.get((row.spec.group, row.spec.partner))
        if partner is not None and partner["peak_bytes"]:
            row.values["mem_ratio"] = row["peak_bytes"] / partner["peak_bytes"]


def run_sweep(
    settings: Settings,
    device: torch.device,
    generator: torch.Generator,
    report: Callable[[str], None] = lambda message: None,
) -> list[Row]:
    """Run every row of :func:`~.rows.plan`, group by group, then :func:`add_memory_ratios`.

    ``report`` gets one line per row, as it is measured (an anchor's last in its group).
    """
    specs = plan(settings)
    groups: dict[str, list[int]] = {}
    for i, spec in enumerate(specs):
        groups.setdefault(spec.group, []).append(i)
    done = 0

    def line(spec: RowSpec, values: dict[str, Any]) -> None:
        nonlocal done
        done += 1
        report(f"[{done}/{len(specs)}] {spec.group_grid} {size_key(spec.group_size)}: {row_summary(values)}")

    measured: dict[int, dict[str, Any]] = {}
    for indices in groups.values():
        members = [specs[i] for i in indices]
        measured.update(zip(indices, _run_group(members, settings, device, generator, line), strict=True))
    rows = [Row(spec, measured[i]) for i, spec in enumerate(specs)]
    add_memory_ratios(rows)
    return rows
