"""The README's main job runs end to end and writes metrics that agree with closed formulas."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import geoconv

ROOT = Path(__file__).resolve().parents[1]


def test_main_job_writes_a_row_for_every_op(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    result = subprocess.run(
        [
            sys.executable,
            "experiments/run.py",
            f"hydra.run.dir={run_dir}",
            "size=8",
            "channels=2",
            "batch=1",
            "repeats=1",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    payload = json.loads((run_dir / "metrics.json").read_text())
    metrics = payload["metrics"]
    for name in geoconv.list_ops():
        for grid in geoconv.get_op(name).grids:
            assert f"{name}/{grid}/fwd_bwd_ms" in metrics
        assert f"| {name} " in result.stdout
    # conv 2 -> 4 channels, 3x3 with bias: 4 * 2 * 9 + 4 parameters.
    assert metrics["conv/planar/params"] == 4 * 2 * 9 + 4
    assert metrics["conv/healpix/params"] == metrics["conv/planar/params"]
    assert payload["config"]["size"] == 8
