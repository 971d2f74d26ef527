"""The benchmark's flat metrics (``metrics.json``) and its pass/fail targets.

``<label>/<grid>/<size>/<field>`` for every ``ok`` row (the paired ratios with their
quartiles ``_q25``/``_q75``), ``speedup_over_<baseline>`` and ``spectral_over_ducc0`` derived
from them, ``<label>/<grid>/slope`` and ``slope_fwd`` (log-log, over the resolutions),
``rows/<status>`` counts, and per target ``target/<name>`` (1 pass, 0 fail) with
``target/<name>/worst``.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Sequence
from typing import Any

from geoconv.experiment.jobs.benchmark.rows import STATUSES, Row, RowSpec, size_key
from geoconv.experiment.jobs.benchmark.settings import Target
from geoconv.experiment.jobs.benchmark.timing import pixel_slope

__all__ = ["ROW_METRICS", "evaluate_targets", "finite", "sweep_metrics"]

ROW_METRICS = (
    "pixels",
    "pairs",
    "fwd_ms",
    "fwdbwd_ms",
    "peak_mb",
    "fwd_ratio",
    "fwd_ratio_q25",
    "fwd_ratio_q75",
    "fwdbwd_ratio",
    "fwdbwd_ratio_q25",
    "fwdbwd_ratio_q75",
    "mem_ratio",
    "pad_over_copy",
    "pad_over_copy_q25",
    "pad_over_copy_q75",
    "pad_over_copy_fwdbwd",
    "pad_over_copy_fwdbwd_q25",
    "pad_over_copy_fwdbwd_q75",
)
"""The fields of a row that become metrics."""


def _prefix(spec: RowSpec) -> str:
    return f"{spec.label}/{spec.group_grid}/{size_key(spec.group_size)}"


def finite(value: Any) -> bool:
    """True for a finite int or float (not a bool, not ``None``).

    >>> finite(1.5), finite(float("nan")), finite(None), finite(True)
    (True, False, False, False)
    """
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def sweep_metrics(rows: list[Row]) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Flat metrics of the rows (see the package doc), and the slopes by ``label/grid`` for the report."""
    metrics: dict[str, float] = {}
    for row in rows:
        if row.status != "ok":
            continue
        for field in ROW_METRICS:
            if finite(row[field]):
                metrics[f"{_prefix(row.spec)}/{field}"] = row[field]
    # Speedups of each case over each op baseline that ran on the case's own grid and size, beside
    # the same floor: the ratio of their paired ratios, so the floor's drift between the two cancels.
    for case in (r for r in rows if r.spec.role == "case" and r.status == "ok" and finite(r["fwdbwd_ratio"])):
        for other in rows:
            if (
                other.spec.role == "baseline"
                and other.status == "ok"
                and other.spec.group == case.spec.group
                and other.spec.grid == case.spec.grid
                and other.spec.partner == case.spec.partner
                and finite(other["fwdbwd_ratio"])
                and case["fwdbwd_ratio"] > 0
            ):
                metrics[f"{_prefix(case.spec)}/speedup_over_{other.spec.label}"] = (
                    other["fwdbwd_ratio"] / case["fwdbwd_ratio"]
                )
    # The spectral transform over ducc0's: the sht row's paired forward ratio, by its own name.
    for row in rows:
        if row.spec.role == "sht" and row.status == "ok" and finite(row["fwd_ratio"]):
            for suffix in ("", "_q25", "_q75"):
                metrics[f"{_prefix(row.spec)}/spectral_over_ducc0{suffix}"] = row[f"fwd_ratio{suffix}"]
    slopes: dict[str, dict[str, float]] = {}
    series: dict[tuple[str, str], list[Row]] = {}
    for row in rows:
        if row.status == "ok":
            series.setdefault((row.spec.label, row.spec.group_grid), []).append(row)
    for (label, grid), members in series.items():
        for field, name in (("fwdbwd_ms", "slope"), ("fwd_ms", "slope_fwd")):
            points = [(r["pixels"], r[field]) for r in members if finite(r[field]) and r[field] > 0]
            if len({p for p, _ in points}) >= 2:
                value = pixel_slope([p for p, _ in points], [t for _, t in points])
                metrics[f"{label}/{grid}/{name}"] = value
                slopes.setdefault(f"{label}/{grid}", {})[name] = value
    for status in STATUSES:
        metrics[f"rows/{status}"] = sum(r.status == status for r in rows)
    metrics["rows/total"] = len(rows)
    return metrics, slopes


def evaluate_targets(targets: Sequence[Target], metrics: dict[str, float]) -> tuple[dict[str, float], list[dict]]:
    """``target/<name>`` (1/0) and ``target/<name>/worst`` for each target with matching metrics.

    A target passes when every metric matching one of its patterns lies within its bounds;
    ``worst`` is the matching value nearest to failing (or furthest outside). Returns the
    metrics and one entry per target for the report (``matched``, and ``passed``,
    ``worst``, ``worst_name`` when it was evaluated).

    >>> out, _ = evaluate_targets([Target("fast", ("a/*",), None, 2.0)], {"a/x": 1.0, "a/y": 3.0})
    >>> out["target/fast"], out["target/fast/worst"], out["targets/evaluated"]
    (0, 3.0, 1)
    """
    out: dict[str, float] = {}
    table = []
    names = [n for n in metrics if not n.startswith(("target/", "targets/", "rows/"))]
    for target in targets:
        matched = sorted({n for p in target.patterns for n in fnmatch.filter(names, p)})
        entry: dict[str, Any] = {"target": target, "matched": matched}
        if not matched:
            table.append(entry)
            continue
        values = [metrics[n] for n in matched]

        def margin(v: float, target: Target = target) -> float:  # negative: outside the bounds
            below = v - target.minimum if target.minimum is not None else math.inf
            above = target.maximum - v if target.maximum is not None else math.inf
            return min(below, above)

        worst_name = min(matched, key=lambda n: margin(metrics[n]))
        passed = all(margin(v) >= 0 for v in values)
        out[f"target/{target.name}"] = int(passed)
        out[f"target/{target.name}/worst"] = metrics[worst_name]
        entry.update(passed=passed, worst=metrics[worst_name], worst_name=worst_name)
        table.append(entry)
    out["targets/evaluated"] = sum("passed" in e for e in table)
    out["targets/passed"] = sum(bool(e.get("passed")) for e in table)
    return out, table
