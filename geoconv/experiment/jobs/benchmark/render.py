"""The benchmark's text outputs: ``benchmark.csv``, ``benchmark.md`` and the one-line progress of each row.

Tables go through :func:`geoconv.experiment.table.markdown_table`, the project's one table renderer.
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
import os
import platform
from pathlib import Path
from typing import Any

import torch

from geoconv.experiment.jobs.benchmark.rows import FIELDS, STATUSES, Row
from geoconv.experiment.jobs.benchmark.settings import PASSES, Settings
from geoconv.experiment.table import markdown_table

__all__ = [
    "fmt",
    "machine_description",
    "ratio_text",
    "render_csv",
    "render_markdown",
    "row_summary",
    "settings_line",
]


def fmt(value: Any, digits: int = 3) -> str:
    """Three significant digits, without exponents from 0.001 up; ``None`` and ``""`` give ``""``.

    >>> fmt(1234.4), fmt(12.345), fmt(0.5), fmt(2e-5), fmt(None), fmt(7)
    ('1234', '12.3', '0.500', '2e-05', '', '7')
    """
    if value is None or value == "":
        return ""
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if abs(value) >= 10 ** (digits - 1):
            return f"{value:.0f}"
        return f"{value:.{digits}g}" if value == 0 or abs(value) < 1e-3 else f"{value:#.{digits}g}".rstrip(".")
    return str(value)


def ratio_text(values: dict[str, Any], field: str) -> str:
    """A paired ratio and its interquartile range: ``1.05 [1.02–1.09]`` ("" when there is none).

    >>> ratio_text({"r": 1.054, "r_q25": 1.02, "r_q75": 1.091}, "r"), ratio_text({}, "r")
    ('1.05 [1.02–1.09]', '')
    """
    value = values.get(field)
    if value is None or value == "":
        return ""
    return f"{fmt(value)} [{fmt(values.get(f'{field}_q25'))}–{fmt(values.get(f'{field}_q75'))}]"


def row_summary(values: dict[str, Any]) -> str:
    """One progress line of a measured row: its label, grid and size, then its times or why it did not run.

    >>> row_summary({"label": "conv", "grid": "planar", "size": "8×8", "status": "ok", "fwd_ms": 1.5})
    'conv on planar 8×8: fwd 1.50 ms'
    >>> row_summary({"label": "pad", "grid": "planar", "size": "8×8", "status": "ok", "fwd_ms": 1.5,
    ...              "fwd_ratio": 0.5, "fwd_ratio_q25": 0.4, "fwd_ratio_q75": 0.6, "partner": "floor"})
    'pad on planar 8×8: fwd 1.50 ms (0.500 [0.400–0.600] × floor)'
    """
    text = f"{values['label']} on {values['grid']} {values['size']}"
    if values["status"] != "ok":
        return f"{text}: {values['status']} ({values['reason']})"
    parts = []
    for p in PASSES:
        if f"{p}_ms" in values:
            ratio = ratio_text(values, f"{p}_ratio") if values.get("partner") else ""
            parts.append(f"{p} {fmt(values[f'{p}_ms'])} ms" + (f" ({ratio} × {values['partner']})" if ratio else ""))
    if "peak_mb" in values:
        parts.append(f"peak {fmt(values['peak_mb'])} MB")
    return f"{text}: " + ", ".join(parts)


def machine_description(device: torch.device | None = None) -> str:
    """The CPU model, core count, torch version, threads and the CUDA device (if used), in one line."""
    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    cpu = cpu or platform.processor() or platform.machine() or "unknown CPU"
    threads = torch.get_num_threads()
    parts = [
        f"{cpu} ({os.cpu_count()} logical CPUs)",
        f"{platform.system()} {platform.release()}",
        f"Python {platform.python_version()}",
        f"torch {torch.__version__}",
        f"{threads} thread{'' if threads == 1 else 's'}",
    ]
    if device is not None and device.type == "cuda":
        parts.append(f"CUDA {torch.version.cuda}: {torch.cuda.get_device_name(device)}")
    else:
        parts.append("CPU run" + (f" (CUDA: {torch.cuda.get_device_name(0)})" if torch.cuda.is_available() else ""))
    return "; ".join(parts)


def settings_line(settings: Settings, device: torch.device) -> str:
    """The settings that shape every number, in one line (the report's and the figure's subtitle)."""
    return (
        f"device {device}, batch {settings.batch}, channels {settings.channels}→{settings.channels}, "
        f"kernel {settings.kernel_size}×{settings.kernel_size}, {settings.dtype}, "
        f"{settings.repeats} interleaved pairs per row after {settings.warmup} warm-up"
    )


def render_csv(rows: list[Row], settings: Settings, device: torch.device, machine: str) -> str:
    """Every row, every field (exact numbers: ``repr`` of floats), the settings and the machine."""
    extra = {
        "device": str(device),
        "batch": settings.batch,
        "channels": settings.channels,
        "kernel_size": settings.kernel_size,
        "dtype": settings.dtype,
        "repeats": settings.repeats,
        "warmup": settings.warmup,
        "machine": machine,
    }
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=[*FIELDS, *extra], lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({f: ("" if row[f] is None else row[f]) for f in FIELDS} | extra)
    return buffer.getvalue()


def _rows_table(rows: list[Row]) -> str:
    body = []
    for row in rows:
        status = row.status if not row["reason"] else f"{row.status}: {row['reason']}"
        label = row.spec.label if row.spec.grid == row.spec.group_grid else f"{row.spec.label} (≈ pixels)"
        # The fwd+bwd ratio where the row has a backward pass, else the forward one (marked).
        ratio = ratio_text(row.values, "fwdbwd_ratio") or (
            f"{text} (fwd)" if (text := ratio_text(row.values, "fwd_ratio")) else ""
        )
        body.append(
            [
                label,
                row.spec.grid,
                row["size"],
                fmt(row["fwd_ms"]),
                fmt(row["fwdbwd_ms"]),
                ratio,
                (row.spec.partner or "—") if row.status == "ok" else "",
                fmt(row["pairs"]),
                fmt(row["peak_mb"]),
                fmt(row["mem_ratio"]),
                status.replace("|", "\\|"),
            ]
        )
    header = [
        "op",
        "grid",
        "size",
        "fwd ms",
        "fwd+bwd ms",
        "paired ratio [q25–q75]",
        "paired with",
        "pairs",
        "peak MB",
        "mem ratio",
        "status",
    ]
    return markdown_table(header, body, numeric=[False] * 3 + [True] * 3 + [False] + [True] * 3 + [False])


def _targets_table(targets: list[dict]) -> str:
    body = []
    for entry in targets:
        target = entry["target"]
        if "passed" not in entry:
            body.append([target.name, ", ".join(target.patterns), target.describe(), "", "not evaluated (no row)"])
            continue
        worst = f"{fmt(entry['worst'])} ({entry['worst_name']})"
        body.append(
            [target.name, ", ".join(target.patterns), target.describe(), worst, "pass" if entry["passed"] else "FAIL"]
        )
    return markdown_table(["target", "metrics", "bound", "worst", "result"], body)


def render_markdown(
    rows: list[Row],
    settings: Settings,
    device: torch.device,
    machine: str,
    slopes: dict[str, dict[str, float]],
    metrics: dict[str, float],
    targets: list[dict],
    seconds: float,
    load: tuple[float, float] | None = None,
    memory_policy: str | None = None,
) -> str:
    """The Markdown report: machine, settings, the table, slopes, speedups and targets.

    ``load``: the 1-minute load average before and after the sweep, where the system gives one
    (:func:`os.getloadavg`): above the thread count, other work shared the cores and every time
    (the ratios much less) is suspect. ``memory_policy``: the allocator line (:mod:`.allocator`).
    """
    lines = [
        "# geoconv benchmark",
        "",
        f"- machine: {machine}",
        f"- settings: {settings_line(settings, device)}; {seconds:.0f} s in all",
        *([f"- load average (1 min) before / after: {load[0]:.2f} / {load[1]:.2f}"] if load else []),
        *([f"- allocator: {memory_policy}"] if memory_policy else []),
        "- paired ratio: the median over interleaved pairs (A, B, then B, A, ...) of the row's fwd+bwd time "
        "over its partner's in the same pair, with the interquartile range [q25–q75]; the partner is the floor "
        "(torch's `nn.Conv2d`, or `nn.ConvTranspose2d` for a transposed conv, with zero padding on the same "
        "folded faces) or ducc0's transform; fwd ms and fwd+bwd ms: medians; mem ratio: peak memory of one "
        "fwd+bwd over the partner's",
        "",
        _rows_table(rows),
    ]
    if slopes:
        body = [[key, fmt(v.get("slope")), fmt(v.get("slope_fwd"))] for key, v in slopes.items()]
        lines += ["", "Log-log slope of time against pixels (1: linear):", ""]
        lines.append(markdown_table(["op/grid", "fwd+bwd", "fwd"], body, numeric=[False, True, True]))
    shown = [k for k in metrics if "/speedup_over_" in k]
    shown += [k for k in metrics if k.endswith(("/pad_over_copy", "/pad_over_copy_fwdbwd", "/spectral_over_ducc0"))]
    if shown:
        lines += [
            "",
            "Speedups (the baseline's paired ratio to the floor over the case's), padding over a plain copy of its "
            "output (paired), and the spectral transform over ducc0's (paired, forward):",
            "",
        ]
        body = [[k, fmt(metrics[k]), fmt(metrics.get(f"{k}_q25")), fmt(metrics.get(f"{k}_q75"))] for k in shown]
        lines.append(markdown_table(["metric", "median", "q25", "q75"], body, numeric=[False, True, True, True]))
    if targets:
        lines += ["", "Targets:", "", _targets_table(targets)]
    counts = ", ".join(f"{int(metrics[f'rows/{s}'])} {s}" for s in STATUSES)
    lines += ["", f"Rows: {counts}.", ""]
    return "\n".join(lines)
