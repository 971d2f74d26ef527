"""The main job: build every registered op on every grid it supports, run it, report.

Each op is built from its config defaults, run forward and backward on a random signal
in the grid's layout, and timed; the table goes to the terminal and ``metrics.json``
(flat ``op/grid/metric -> number``, plus the resolved config) to Hydra's run directory.

    python experiments/run.py                 # all ops
    python experiments/run.py ops='*pool*' size=64
"""

from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

import geoconv
from geoconv.grids import get_grid, list_grids
from geoconv.registry import get_op


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when present, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(name: str, grid: str, cfg: DictConfig, device: torch.device) -> dict[str, object]:
    """Build ``name`` on ``grid`` from defaults; time forward+backward; return one table row."""
    spec = get_op(name)
    out_channels = cfg.channels if spec.same_channels else 2 * cfg.channels
    module = spec.build(cfg.channels, out_channels, grid=grid).to(device)
    shape = get_grid(grid).shape(cfg.batch, cfg.channels, cfg.size)
    x = torch.randn(shape, device=device, requires_grad=True)

    def step() -> torch.Tensor:
        out = spec.apply(module, x)
        out = out[0] if isinstance(out, tuple) else out
        out.square().mean().backward()
        return out

    out = step()  # warm-up
    times = []
    for _ in range(cfg.repeats):
        _synchronize(device)
        start = time.perf_counter()
        step()
        _synchronize(device)
        times.append(time.perf_counter() - start)
    return {
        "op": name,
        "grid": grid,
        "params": sum(p.numel() for p in module.parameters()),
        "input": "x".join(map(str, shape[1:])),
        "output": "x".join(map(str, out.shape[1:])),
        "fwd_bwd_ms": 1000 * statistics.median(times),
    }


def format_table(rows: list[dict[str, object]]) -> str:
    """Render rows as an aligned Markdown table."""
    headers = list(rows[0])
    cells = [[f"{row[h]:.3f}" if isinstance(row[h], float) else str(row[h]) for h in headers] for row in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]
    lines = ["| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |"]
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    lines += ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |" for row in cells]
    return "\n".join(lines)


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    torch.manual_seed(cfg.seed)
    device = resolve_device(cfg.device)
    implemented = set(list_grids())
    cases = [(n, g) for n in geoconv.list_ops(cfg.ops) for g in get_op(n).grids if g in implemented]
    if not cases:
        raise geoconv.GeoconvError(f"ops={cfg.ops!r} matches no registered op; registered: {geoconv.list_ops()}")
    rows = []
    for index, (name, grid) in enumerate(cases, start=1):
        print(f"[{index}/{len(cases)}] {name} on {grid}", flush=True)
        rows.append(measure(name, grid, cfg, device))
    print()
    print(format_table(rows))
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    metrics = {f"{r['op']}/{r['grid']}/{k}": r[k] for r in rows for k in ("params", "fwd_bwd_ms")}
    payload = {"metrics": metrics, "config": OmegaConf.to_container(cfg, resolve=True), "device": str(device)}
    tmp = run_dir / "metrics.json.tmp"
    tmp.write_text(json.dumps(payload, indent=2))
    os.replace(tmp, run_dir / "metrics.json")
    print(f"\n{len(rows)} op/grid pairs on {device}; metrics in {run_dir / 'metrics.json'}")


if __name__ == "__main__":
    main()
